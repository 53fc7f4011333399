# The machine-speed yardstick of each fleet size of a scaling run
# (DIR/scale.json, or a main job's DIR/report.json): Redis's CPU per
# purchase at the repeats' best steps (median [min-max]), its ratio r to
# one instance's, and the size's efficiency.
# Usage: python3 yardstick.py DIR...
import json,sys,statistics as st
def load(f):
    try: return json.load(open(f+'/scale.json'))
    except FileNotFoundError: return json.load(open(f+'/report.json'))['scale']
for f in sys.argv[1:]:
    try: s=load(f)
    except Exception as e: continue
    ys={}
    for p in s.get('points',[]):
        v=[]
        for r in p['repeats']:
            b=r.get('best')
            if not b: continue
            u=b.get('usage') or {}
            sh={k['name']:k['cpu'] for k in u.get('shared',[])}
            if 'Redis' in sh and b['tps']>0: v.append(1000*sh['Redis']/b['tps'])
        if v: ys[p['instances']]=(st.median(v), min(v), max(v), p.get('efficiency'), p.get('efficiencyInterval'))
    if 1 not in ys: continue
    base=ys[1][0]
    out=[]
    for n,(m,lo,hi,e,iv) in sorted(ys.items()):
        out.append('N=%d redis %.2f [%.2f-%.2f] r=%.3f eff %s'%(n,m,lo,hi,base/m, e and '%.0f%%'%(e*100)))
    print('/'.join(f.split('/')[-2:])[:32].ljust(32), ' | '.join(out))
