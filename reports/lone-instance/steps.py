# Each repeat of a scaling run (DIR/scale.json, or a main job's
# DIR/report.json; its header: the quota, the stack's measured ceiling and
# the start, UTC): its best TPS and every step
# as +/-(passed/failed) TPS:instances-CPU-ms-per-purchase/P95-ms.
# Usage: python3 steps.py DIR...
import json,sys
for f in sys.argv[1:]:
    try: d=json.load(open(f+'/scale.json'))
    except FileNotFoundError: d=json.load(open(f+'/report.json'))['scale']  # a main job's run
    c=d.get('calibration') or {}
    print('==',f, 'quota',d['cpusPerInstance'], 'ceiling',c.get('ceiling') and round(c['ceiling']), 'started',d['startedAt'][:19])
    for p in d['points']:
        for r in p['repeats']:
            b=r.get('best')
            rows=[]
            for s in r['steps']:
                u=s.get('usage') or {}
                inst=u.get('instances',[])
                if not inst: continue
                cpu=sum(i['cpu'] for i in inst)
                rows.append('%s%.0f:%.2f/%.0f'%('+' if s['pass'] else '-', s['tps'], 1000*cpu/max(s['tps'],1), s['p95Ms']))
            print(' N=%d best %s | %s'%(p['instances'], b and round(b['tps']), '  '.join(rows)))
        print('  N=%d tps %s eff %s'%(p['instances'], p['tps'], p.get('efficiency')))
