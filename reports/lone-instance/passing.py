# Every passing step of one instance in scale.json or a job's report.json:
# TPS, CPU per purchase, machine busy, CPU waiting, shared CPU, throttled share.
# Usage: python3 passing.py FILE...
import json,sys
for f in sys.argv[1:]:
    d=json.load(open(f))
    if 'scale' in d: d=d['scale']
    for p in d['points']:
        if p['instances']!=1: continue
        for r in p['repeats']:
            for s in r['steps']:
                u=s.get('usage')
                if not u or not s['pass']: continue
                sh={x['name']:round(x['cpu'],2) for x in u['shared']}
                cpu=sum(i['cpu'] for i in u['instances'])
                print(f.split('/')[-2] if 'report' in f else f.split('/')[-2], 'tps %.0f cpu/p %.2f busy %.2f wait %.2f'%(s['tps'],1000*cpu/s['tps'],u['machineBusy'],u['cpuWaiting']), sh, 'thr', [round(i['throttled'],2) for i in u['instances']])
