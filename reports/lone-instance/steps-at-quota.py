# Every rated step of a scaling run with its instances' usage, one line a
# step: fleet size, the repeat's place in the run's order, offered rate,
# TPS per instance, pass, corrected P95 (ms), the instances' CPU per
# purchase (ms), the share of their quota they used, the machine's busy
# share. Usage: steps-at-quota.py report.json (or scale.json)
import json,sys
r=json.load(open(sys.argv[1]))
sc=r.get('scale',r)
for p in sc['points']:
    n=p['instances']
    for rep in p['repeats']:
        for s in rep['steps']:
            u=s.get('usage')
            if not u or not s.get('rate'): continue
            cpu=sum(i['cpu'] for i in u['instances']); q=sum(i['quota'] for i in u['instances'])
            print(n, rep.get('order'), f"rate {s['rate']:.0f} tps/inst {s['tps']/n:.0f} pass {s['pass']} p95 {s['p95Ms']:.1f} cost {cpu/s['tps']*1000:.3f} used {cpu/q:.2f} busy {u.get('machineBusy',0):.2f}")
