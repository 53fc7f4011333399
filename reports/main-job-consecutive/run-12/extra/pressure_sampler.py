import time,sys
out=open(sys.argv[1],'w')
out.write('t\tio_some_us\tio_full_us\tcpu_some_us\tvda_writes\tvda_write_ms\tvda_reads\tvda_read_ms\tvda_inflight\tvda_io_ms\tvda_weighted_ms\n')
def psi(f):
    d={}
    for l in open(f):
        k=l.split()[0]; d[k]=int(l.split('total=')[1])
    return d
while True:
    io=psi('/proc/pressure/io'); cpu=psi('/proc/pressure/cpu')
    vd=None
    for l in open('/proc/diskstats'):
        p=l.split()
        if p[2]=='vda': vd=p
    out.write(f"{time.time():.3f}\t{io['some']}\t{io['full']}\t{cpu['some']}\t{vd[7]}\t{vd[10]}\t{vd[3]}\t{vd[6]}\t{vd[11]}\t{vd[12]}\t{vd[13]}\n")
    out.flush()
    time.sleep(1)
