"""Two perf recordings of the bridge (say memory and durable at one concurrency), split
into the same buckets per callback, and the difference (bench/results/2026-12-05-durable-tax.md).
  perf record -F 1999 -g -p BRIDGE_PID -o A.data -- sleep 8     (callbacks in those 8 s: CB_A)
  python3 bench/perf_groups.py A.data CB_A B.data CB_B
A frame goes to the first bucket whose pattern it matches; threads first."""
import subprocess,re,sys
def load(f, cb):
    args=['perf','report','-i',f,'--no-children','--sort','comm,sym','-g','none','--stdio']
    out=subprocess.run(args,capture_output=True,text=True).stdout
    tot=float(re.search(r'Event count \(approx.\): (\d+)',out).group(1))/1e9
    rows=[]
    for l in out.splitlines():
        m=re.match(r'\s+([\d.]+)%\s+(\S+(?: \S+)?)\s+(\[.\])\s+(.*)',l)
        if m: rows.append((m.group(2).strip(),m.group(3)+m.group(4).strip(),float(m.group(1))/100*tot/cb*1e6))
    return rows
groups=[('reader thread',lambda c,s:c.startswith('spool-reader')),
 ('housekeeping thread',lambda c,s:c.startswith('spool-housekeep')),
 ('wake/re-poll',lambda c,s:re.search(r'serve::\{\{closure|poll_write|run_task|waker|[Nn]otif|wake_by|raw::poll|Registration::poll_ready|finish_task_switch|__schedule|futex',s)),
 ('copies',lambda c,s:re.search(r'memmove|memcpy|copy_folio|copy_user',s)),
 ('alloc',lambda c,s:re.search(r'_mi_|mi_free|mi_theap|malloc|_int_free|consolidate',s)),
 ('spool append+crc',lambda c,s:re.search(r'spool::|crc32',s)),
 ('kernel block/ext4/virtio',lambda c,s:re.search(r'ext4|blk_|bio_|iowrite|virtio|folio|filemap|jbd2|fdatasync|writepages|irqrestore',s)),
]
def split(rows):
    d={g:0.0 for g,_ in groups}; d['other']=0.0
    for c,s,v in rows:
        for g,f in groups:
            if f(c,s): d[g]+=v; break
        else: d['other']+=v
    return d
a=split(load(sys.argv[1],float(sys.argv[2]))); b=split(load(sys.argv[3],float(sys.argv[4])))
for k in a: print("%-28s %6.2f %6.2f %+6.2f"%(k,a[k],b[k],b[k]-a[k]))
print("%-28s %6.2f %6.2f %+6.2f"%('total',sum(a.values()),sum(b.values()),sum(b.values())-sum(a.values())))
