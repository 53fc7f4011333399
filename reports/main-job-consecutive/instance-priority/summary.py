# Per run of shares.sh (DIR/scale.json): its start, the stack's ceiling,
# TPS at 1 and 4, efficiency at 4 and 4's machine-speed yardstick ratio.
# Usage: python3 summary.py DIR...
import json,sys
for f in sys.argv[1:]:
    s=json.load(open(f+'/scale.json'))
    pts={p['instances']:p for p in s['points']}
    y=(pts[4].get('yardstick') or {}).get('ratio')
    print(f.split('/')[-1], s['startedAt'][11:19], 'ceiling', round(s['calibration']['ceiling']),
          'TPS(1)', round(pts[1]['tps']), 'TPS(4)', round(pts[4]['tps']),
          'efficiency(4) %.0f%%'%(100*pts[4]['efficiency']), 'yardstick(4) %.2fx'%y if y else '')
