import json,sys,os,bisect,datetime
rep=sys.argv[1]; psi=sys.argv[2]
rows=[l.rstrip('\n').split('\t') for l in open(psi)][1:]
rows=[[float(x) for x in r] for r in rows]
ts=[r[0] for r in rows]
def at(t):
    i=bisect.bisect_left(ts,t); i=min(max(i,0),len(rows)-1); return rows[i]
r=json.load(open(os.path.join(rep,'report.json')))
s=r['scale']
base=os.path.dirname(rep.rstrip('/'))
out=[]
for p in s['points']:
  for rp in p['repeats']:
    for st in rp['steps']:
      if not st['rate']: continue
      d=st['dir']
      cands=[d, os.path.join(rep,d), os.path.join(os.path.dirname(rep),d)]
      sm=None
      for c in cands:
          f=os.path.join(c,'summary.json')
          if os.path.exists(f): sm=json.load(open(f)); break
      if not sm: continue
      t0=datetime.datetime.fromisoformat(sm['startedAt'].replace('Z','+00:00')).timestamp()
      t1=t0+sm['durationSecs']
      a,b=at(t0),at(t1)
      dt=b[0]-a[0]
      if dt<=0: continue
      io=(b[1]-a[1])/1e6/dt; iof=(b[2]-a[2])/1e6/dt; cpu=(b[3]-a[3])/1e6/dt
      w=b[4]-a[4]; wl=(b[5]-a[5])/w if w else 0
      out.append((t0,p['instances'],rp['order'],st['rate'],st['tps'],st['p95Ms'],st['pass'],io,iof,cpu,w/dt,wl))
out.sort()
print('N order rate tps p95 pass io_some io_full cpu_some writes/s write_ms')
for o in out:
    print('%d o%d %6.1f %6.1f %6.1f %-5s %.3f %.3f %.3f %6.0f %.2f'%o[1:])
