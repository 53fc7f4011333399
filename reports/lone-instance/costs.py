# What each part of the machine spent per purchase in the passing steps of
# a scaling run (DIR/scale.json, or a main job's DIR/report.json), per
# fleet size: the instances, the broker and Redis (CPU ms per purchase,
# min-max over the steps), and the whole machine (its busy share of 2
# cores, in ms per purchase).
# Usage: python3 costs.py DIR...
import json,sys
for f in sys.argv[1:]:
    try: s=json.load(open(f+'/scale.json'))
    except FileNotFoundError: s=json.load(open(f+'/report.json'))['scale']  # a main job's run
    print('==',f,'started',s['startedAt'][:19])
    for p in s['points']:
        rows=[]
        for r in p['repeats']:
            for x in r['steps']:
                u=x.get('usage') or {}
                if not x['pass'] or not u.get('shared'): continue
                sh={k['name']:k['cpu'] for k in u['shared']}
                inst=sum(i['cpu'] for i in u['instances'])
                t=x['tps']
                rows.append((t, 1000*inst/t, 1000*sh.get('broker',0)/t, 1000*sh.get('Redis',0)/t, 1000*u['machineBusy']*2/t))
        if not rows: continue
        rng=lambda i: '%.2f-%.2f'%(min(r[i] for r in rows), max(r[i] for r in rows))
        print(' N=%d passing TPS %.0f-%.0f: instances %s, broker %s, Redis %s, machine %s ms/purchase'%(
            p['instances'], min(r[0] for r in rows), max(r[0] for r in rows), rng(1), rng(2), rng(3), rng(4)))
