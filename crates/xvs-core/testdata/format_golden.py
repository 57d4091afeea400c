# Regenerate: python3 format_golden.py > format_golden.json
# Independent golden generator: applies ipvsadm.c's printf formats with Python's
# C-compatible % operator.
out = {}
def largenum(i, exact=False):
    if exact:
        l = len("%d" % i)
        return "%*d" % (9 if l <= 8 else l + 1, i)
    if i < 100000000: return "%9d" % i
    if i < 1000000000: return "%8dK" % (i // 1000)
    if i < 100000000000: return "%8dM" % (i // 1000000)
    if i < 100000000000000: return "%8dG" % (i // 1000000000)
    return "%8dT" % (i // 1000000000000)

hdr = "IP Virtual Server version 1.2.1 (size=4096)\n"
t_def = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
t_tun = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
def t_stats(): return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
def t_rate(): return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
def t_thr(): return "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
def t_pc(): return "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")

def svc(proto, name): return ("%-4s %s" % (proto, name))[:33]
def d(s): return "  -> %-28s %-7s %-6d %-10u %-10u\n" % s

# table (sorted order): TCP 10.0.0.5:443 sh sh-port; TCP 10.1.1.1:80 wlc [10.2.2.2:80 Route 2 0 0, 10.2.2.3:80 Masq 1 2 3]; UDP 10.1.1.1:53 rr persistent
out["ln"] = hdr + t_def + svc("TCP","10.0.0.5:443") + " sh (sh-port)\n" + svc("TCP","10.1.1.1:80") + " wlc\n" \
  + d(("10.2.2.2:80","Route",2,0,0)) + d(("10.2.2.3:80","Masq",1,2,3)) \
  + svc("UDP","10.1.1.1:53") + " rr persistent 360 mask 255.255.255.0 ops\n"
out["l"] = hdr + t_def + svc("TCP","10.0.0.5:443") + " sh (sh-port)\n" + svc("TCP","vip:http") + " wlc\n" \
  + d(("rs2:http","Route",2,0,0)) + d(("10.2.2.3:http","Masq",1,2,3)) \
  + svc("UDP","vip:domain") + " rr persistent 360 mask 255.255.255.0 ops\n"
out["save_n"] = "-A -t 10.0.0.5:443 -s sh -b sh-port\n-A -t 10.1.1.1:80 -s wlc\n-a -t 10.1.1.1:80 -r 10.2.2.2:80 -g -w 2\n-a -t 10.1.1.1:80 -r 10.2.2.3:80 -m -w 1\n-A -u 10.1.1.1:53 -s rr -p 360 -M 255.255.255.0 -o\n"
out["save"] = "-A -t 10.0.0.5:443 -s sh -b sh-port\n-A -t vip:http -s wlc\n-a -t vip:http -r rs2:http -g -w 2\n-a -t vip:http -r 10.2.2.3:http -m -w 1\n-A -u vip:domain -s rr -p 360 -M 255.255.255.0 -o\n"

# stats: service 10.1.1.1:80 stats
S = [1, 123456789, 99999999, 1234567890123, 999999999999999]
D1 = [0, 5, 100000000, 7, 8]
D2 = [3, 4, 5, 6, 123456789012]
def statline(name, vals, exact):
    return "%-33s" % name + "".join(largenum(v, exact) for v in vals) + "\n"
def dstat(name, vals, exact):
    return "  -> %-28s" % name + "".join(largenum(v, exact) for v in vals) + "\n"
for ex in (False, True):
    out["stats" + ("_exact" if ex else "")] = hdr + t_stats() + statline(svc("TCP","10.1.1.1:80"), S, ex) \
        + dstat("10.2.2.2:80", D1, ex) + dstat("10.2.2.3:80", D2, ex)
R = [12, 3456, 789, 123456789, 5]
RD = [1, 2, 3, 1000000000, 4]
out["rate"] = hdr + t_rate() + statline(svc("TCP","10.1.1.1:80"), R, False) \
    + ("  -> %-28s %8u %8u %8u" % ("10.2.2.2:80", 1, 2, 3)) + largenum(1000000000) + largenum(4) + "\n"
out["thr"] = hdr + t_thr() + svc("TCP","10.1.1.1:80") + " wlc\n" + "  -> %-28s %-10u %-10u %-10u %-10u\n" % ("10.2.2.2:80", 100, 10, 7, 8)
out["pc"] = hdr + t_pc() + svc("TCP","10.1.1.1:80") + " wlc\n" + "  -> %-28s %-9u %-11u %-10u %-10u\n" % ("10.2.2.2:80", 2, 9, 7, 8)
def dt(s): return "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n" % s
out["tun"] = hdr + t_tun + svc("TCP","10.1.1.1:80") + " rr\n" + dt(("10.2.2.1:80","Tunnel","ipip",1,0,0)) \
    + dt(("10.2.2.2:80","Tunnel","gue:6080:r+c",1,0,0)) + dt(("10.2.2.3:80","Tunnel","gre:+c",1,0,0)) + dt(("10.2.2.4:80","Masq","n/a",1,0,0))
out["tun_save"] = "-A -t 10.1.1.1:80 -s rr\n-a -t 10.1.1.1:80 -r 10.2.2.1:80 -i -w 1 --tun-type ipip\n-a -t 10.1.1.1:80 -r 10.2.2.2:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum\n-a -t 10.1.1.1:80 -r 10.2.2.3:80 -i -w 1 --tun-type gre --tun-csum\n-a -t 10.1.1.1:80 -r 10.2.2.4:80 -m -w 1\n"
# conns
ch = "IPVS connection entries\n" + "pro expire %-11s %-18s %-18s %s\n" % ("state", "source", "virtual", "destination")
chp = "IPVS connection entries\n" + "pro expire %-11s %-18s %-18s %-18s %-16s %s\n" % ("state", "source", "virtual", "destination", "pe name", "pe_data")
def c(proto, exp, st, a, b, cc):
    return "%-3s %-6s %-11s %-18s %-18s %s\n" % (proto, "%02d:%02d" % (exp // 60, exp % 60), st, a, b, cc)
body_n = c("TCP", 899, "ESTABLISHED", "192.0.2.7:40000", "10.1.1.1:80", "10.2.2.2:80") + c("UDP", 6059, "UDP", "192.0.2.7:5353", "10.1.1.1:53", "10.2.2.2:53")
body = c("TCP", 899, "ESTABLISHED", "192.0.2.7:40000", "vip:http", "rs2:http") + c("UDP", 6059, "UDP", "192.0.2.7:5353", "vip:domain", "rs2:domain")
out["conn_n"] = ch + body_n
out["conn"] = ch + body
out["conn_pc"] = chp + body_n
# truncation
long_host = "averyveryverylonghostname.example.org"
out["trunc"] = hdr + t_def + svc("TCP", long_host + ":http") + " wlc\n" + d(((long_host + ":http")[:28], "Route", 1, 0, 0))
# SCTP (ipvsadm 1.31: protocol_name() "SCTP", "%-4s %s" cut at 33, "--sctp-service" in -S,
# the /proc proto string "SCTP" printed with %-3s in -Lc). Sorted by protocol number: TCP 6,
# UDP 17, SCTP 132, so the SCTP service comes last although its address is the lowest.
# table: SCTP 10.0.0.1:5060 rr [10.0.0.3:5061 Masq 1 4 5, 10.0.0.2:5060 Route 2]; TCP 10.0.0.9:80 wlc; UDP 10.0.0.1:53 rr
out["sctp_ln"] = hdr + t_def + svc("TCP","10.0.0.9:80") + " wlc\n" + svc("UDP","10.0.0.1:53") + " rr\n" \
  + svc("SCTP","10.0.0.1:5060") + " rr\n" + d(("10.0.0.2:5060","Route",2,0,0)) + d(("10.0.0.3:5061","Masq",1,4,5))
# names: 5060 is "sip" for sctp, 5061 only has a tcp name, 53 only a udp one
out["sctp_l"] = hdr + t_def + svc("TCP","10.0.0.9:http") + " wlc\n" + svc("UDP","sipvip:domain") + " rr\n" \
  + svc("SCTP","sipvip:sip") + " rr\n" + d(("rs2:sip","Route",2,0,0)) + d(("10.0.0.3:5061","Masq",1,4,5))
out["sctp_save_n"] = "-A -t 10.0.0.9:80 -s wlc\n-A -u 10.0.0.1:53 -s rr\n-A --sctp-service 10.0.0.1:5060 -s rr\n" \
  "-a --sctp-service 10.0.0.1:5060 -r 10.0.0.2:5060 -g -w 2\n-a --sctp-service 10.0.0.1:5060 -r 10.0.0.3:5061 -m -w 1\n"
out["sctp_save"] = "-A -t 10.0.0.9:http -s wlc\n-A -u sipvip:domain -s rr\n-A --sctp-service sipvip:sip -s rr\n" \
  "-a --sctp-service sipvip:sip -r rs2:sip -g -w 2\n-a --sctp-service sipvip:sip -r 10.0.0.3:5061 -m -w 1\n"
# the SCTP service alone, with its two dests
sc = svc("SCTP","10.0.0.1:5060")
out["sctp_stats"] = hdr + t_stats() + statline(sc, S, False) + dstat("10.0.0.2:5060", D1, False) + dstat("10.0.0.3:5061", D2, False)
out["sctp_rate"] = hdr + t_rate() + statline(sc, R, False) \
    + ("  -> %-28s %8u %8u %8u" % ("10.0.0.2:5060", 1, 2, 3)) + largenum(1000000000) + largenum(4) + "\n" \
    + ("  -> %-28s %8u %8u %8u" % ("10.0.0.3:5061", 0, 0, 0)) + largenum(0) + largenum(0) + "\n"
out["sctp_thr"] = hdr + t_thr() + sc + " rr\n" + "  -> %-28s %-10u %-10u %-10u %-10u\n" % ("10.0.0.2:5060", 100, 10, 0, 0) \
    + "  -> %-28s %-10u %-10u %-10u %-10u\n" % ("10.0.0.3:5061", 0, 0, 4, 5)
out["sctp_pc"] = hdr + t_pc() + sc + " rr\n" + "  -> %-28s %-9u %-11u %-10u %-10u\n" % ("10.0.0.2:5060", 2, 0, 0, 0) \
    + "  -> %-28s %-9u %-11u %-10u %-10u\n" % ("10.0.0.3:5061", 1, 9, 4, 5)
sbody_n = c("SCTP", 899, "ESTABLISHED", "192.0.2.7:40000", "10.0.0.1:5060", "10.0.0.3:5061") \
    + c("SCTP", 60, "C-SENT", "192.0.2.8:40001", "10.0.0.1:5060", "10.0.0.2:5060") \
    + c("SCTP", 3, "S-ACK-SENT", "192.0.2.9:5060", "10.0.0.1:5060", "10.0.0.2:5060")
sbody = c("SCTP", 899, "ESTABLISHED", "192.0.2.7:40000", "sipvip:sip", "10.0.0.3:5061") \
    + c("SCTP", 60, "C-SENT", "192.0.2.8:40001", "sipvip:sip", "rs2:sip") \
    + c("SCTP", 3, "S-ACK-SENT", "192.0.2.9:sip", "sipvip:sip", "rs2:sip")
out["sctp_conn_n"] = ch + sbody_n
out["sctp_conn"] = ch + sbody
out["sctp_conn_pc"] = chp + sbody_n
out["sctp_trunc"] = hdr + t_def + svc("SCTP", long_host + ":sip") + " rr\n"
import json
print(json.dumps(out))
