# Each repeat of a scaling run (DIR/scale.json): its best TPS and every step
# as +/-(passed/failed) TPS:instances-CPU-ms-per-purchase/P95-ms.
# Usage: python3 steps.py DIR...
import json,sys
for f in sys.argv[1:]:
    d=json.load(open(f+'/scale.json'))
    print('==',f, 'quota',d['cpusPerInstance'])
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
