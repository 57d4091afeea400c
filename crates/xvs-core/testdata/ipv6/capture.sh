#!/bin/sh
# Captures Debian's ipvsadm 1.31 against a real kernel's IPVS with IPv6
# services: every listing format and the errors of malformed IPv6 input.
# Run inside the VM, from the checkout root:
#   cargo xtask vm --kernel 6.12 -- sh crates/xvs-core/testdata/ipv6/capture.sh > out.txt
#   sh crates/xvs-core/testdata/ipv6/unpack.sh out.txt
# Each case becomes NAME.out (stdout), NAME.err (stderr), NAME.rc (exit
# code) in a tar archive printed base64-encoded between markers.
# Only documentation ranges are used (2001:db8::/32, 192.0.2.0/24,
# 198.51.100.0/24, 203.0.113.0/24).
O=/tmp/ipv6-golden
rm -rf $O; mkdir -p $O
A=ipvsadm
run() { # run NAME ARGS...
    n=$1; shift
    "$@" >$O/$n.out 2>$O/$n.err </dev/null
    echo $? >$O/$n.rc
}
runin() { # runin NAME FILE ARGS... (stdin from FILE)
    n=$1; f=$2; shift 2
    "$@" >$O/$n.out 2>$O/$n.err <$f
    echo $? >$O/$n.rc
}
modprobe ip_vs
for s in rr wlc sh lc; do modprobe ip_vs_$s; done
modprobe ipip; modprobe ip6_tunnel; modprobe fou; modprobe ip_gre 2>/dev/null
uname -r >$O/kernel.txt
$A --version >>$O/kernel.txt 2>&1

# ---- the table ----------------------------------------------------------
setup() {
    run s01 $A -A -t [2001:db8::80]:80 -s rr
    run s02 $A -a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m -w 1
    run s03 $A -a -t [2001:db8::80]:80 -r [2001:db8:1234:5678:9abc:def0:1234:5678]:8080 -m -w 2
    run s04 $A -a -t [2001:db8::80]:80 -r [2001:db8::a0a1]:80 -g -w 3 -x 100 -y 10
    run s05 $A -a -t [2001:db8::80]:80 -r [2001:db8::a0a2]:80 -i -w 4
    run s06 $A -A -t [2001:db8::80]:443 -s wlc -p 300 -M 64
    run s07 $A -a -t [2001:db8::80]:443 -r [2001:db8::b0b0]:443 -g -w 1
    run s08 $A -A -u [2001:db8::53]:53 -s sh -b sh-port,sh-fallback
    run s09 $A -a -u [2001:db8::53]:53 -r [2001:db8::5353]:53 -m -w 5
    run s10 $A -A --sctp-service [2001:db8::5]:5060 -s rr
    run s10b $A -A -u [2001:db8::5]:5060 -s rr -o
    run s10c $A -A --sctp-service [2001:db8::5]:5061 -s rr -o
    run s11 $A -a --sctp-service [2001:db8::5]:5060 -r [2001:db8::5a]:5060 -m
    run s12 $A -A -f 1 -6 -s rr
    run s13 $A -a -f 1 -6 -r [2001:db8::f1]:0 -g
    run s14 $A -A -f 2 -6 -s lc -p 60 -M 64
    run s15 $A -a -f 2 -6 -r [2001:db8::f2] -g
    run s15b $A -a -f 2 -6 -r 2001:db8::f2 -g
    run s15c $A -A -t [2001:db8::6]:80 -s rr -p 60 --pe sip
    run s16 $A -A -f 1 -s rr
    run s17 $A -a -f 1 -r 192.0.2.11 -g
    # an IPv4 service with IPv6 tunnel dests, an IPv6 one with IPv4 tunnel dests
    run s18 $A -A -t 192.0.2.1:80 -s rr
    run s19 $A -a -t 192.0.2.1:80 -r [2001:db8::c1]:80 -i -w 1
    run s20 $A -a -t 192.0.2.1:80 -r 198.51.100.1:80 -i -w 1
    run s21 $A -a -t 192.0.2.1:80 -r [2001:db8::c2]:80 -i --tun-type gue --tun-port 6080 --tun-nocsum
    run s22 $A -A -t [2001:db8::443]:443 -s rr -p
    run s23 $A -a -t [2001:db8::443]:443 -r 203.0.113.7:443 -i
    run s24 $A -a -t [2001:db8::443]:443 -r 203.0.113.8:443 -i --tun-type gre --tun-csum
    run s25 $A -a -t [2001:db8::443]:443 -r [2001:db8::ffff:ffff:ffff:ffff]:443 -i --tun-type gue --tun-port 5555 --tun-remcsum
    run s26 $A -a -t [2001:db8::443]:443 -r 198.51.100.200:443 -i
    # sort order: the wrapped sign of word differences, v4 before v6
    run s27 $A -A -t [2001:db8:9000::1]:80 -s rr
    run s28 $A -A -t [2001:db8:0:1::1]:80 -s rr
    run s29 $A -A -t [2001:db8::1]:80 -s rr
    run s30 $A -A -t [2001:db8::1]:8 -s rr
    run s31 $A -A -t 203.0.113.9:80 -s rr
    run s32 $A -A -u 203.0.113.9:80 -s rr
    run s33 $A -A -u [2001:db8::1]:80 -s rr
    run s34 $A -a -t [2001:db8::1]:80 -r [2001:db8:9000::2]:80 -m
    run s35 $A -a -t [2001:db8::1]:80 -r [2001:db8:0:1::2]:80 -m
    run s36 $A -a -t [2001:db8::1]:80 -r [2001:db8::2]:81 -m
    run s37 $A -a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -m
    # the longest numeric form
    run s38 $A -A -t [2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535 -s rr -p 100 -M 128
    run s39 $A -a -t [2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535 -r [2001:db8:eeee:eeee:eeee:eeee:eeee:eeee]:65535 -m
    run s40 $A -A -t [::ffff:192.0.2.5]:80 -s rr
    run s41 $A -A -t 2001:db8::2 -s rr -p 30 -M 48
    run s42 $A -A -t 2001:db8::2:80 -s rr -p
    # bare / port-less dest forms
    run s43 $A -a -t [2001:db8::80]:443 -r 2001:db8::b0b1 -g
    run s44 $A -a -t [2001:db8::80]:443 -r [2001:db8::b0b2]:8443 -m
    run s45 $A -a -t 2001:db8::2:80 -r 2001:db8::d1 -g
    run s46 $A -A -t [2001:db8::3]:http -s rr
    run s47 $A -A -f 4294967295 -6 -s rr
}
setup

# ---- connections (local traffic through LOCAL_OUT) -------------------------
ip -6 addr add 2001:db8::80/128 dev lo
ip -6 addr add 2001:db8::a0a0/128 dev lo
ip -6 addr add 2001:db8::b0b0/128 dev lo
ip -6 addr add 2001:db8::f0/128 dev lo
# fwmark 2 (the IPv6 fwmark service with -p 60 -M 64) for 2001:db8::f0
nft add table ip6 fwm
nft add chain ip6 fwm out '{ type route hook output priority mangle; }'
nft add rule ip6 fwm out ip6 daddr 2001:db8::f0 meta mark set 2
python3 - <<'PY' &
import socket, threading
def serve(addr, port):
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(8)
    while True:
        c, _ = s.accept(); c.recv(100); c.sendall(b"x" * 100)
for a, p in (("2001:db8::a0a0", 80), ("2001:db8::b0b0", 443), ("2001:db8::80", 443)):
    threading.Thread(target=serve, args=(a, p), daemon=True).start()
import time; time.sleep(60)
PY
sleep 2
python3 - <<'PY' >$O/traffic.txt 2>&1
import socket
keep = []
for addr, port in (("2001:db8::80", 80), ("2001:db8::80", 443), ("2001:db8::f0", 80)):
    try:
        s = socket.create_connection((addr, port), timeout=3)
        s.sendall(b"hello"); print(addr, port, s.recv(100)[:5]); keep.append(s)
    except Exception as e:
        print(addr, port, "error", e)
import time; time.sleep(0.5)
PY
sleep 1
# Names for the name-resolving listings: long ones, to show which are cut.
cat >>/etc/hosts <<'H'
2001:db8::80 a-long-virtual-service-name.example.org
2001:db8::a0a0 rs-a0a0.example.org
2001:db8::c1 tun6-dest-with-a-long-name.example.org
203.0.113.7 a-very-long-real-server-name.example.net
192.0.2.1 a-long-ipv4-virtual-service.example.net
H
cat /proc/net/ip_vs_conn >$O/proc_ip_vs_conn.txt 2>&1
cat /proc/net/ip_vs >$O/proc_ip_vs.txt 2>&1
cat /proc/net/ip_vs_stats >$O/proc_ip_vs_stats.txt 2>&1

# ---- listings ---------------------------------------------------------------
run L       $A -L
run Ln      $A -Ln
run Ln_nosort $A -Ln --nosort
run stats   $A -Ln --stats
run rate    $A -Ln --rate
run stats_exact $A -Ln --stats --exact
run rate_exact  $A -Ln --rate --exact
run L_stats $A -L --stats
run thresholds $A -Ln --thresholds
run persistent $A -Ln --persistent-conn
run tuninfo $A -Ln --tun-info
run S       $A -S
run Sn      $A -Sn
run Lc      $A -Lc
run Lnc     $A -Lnc
run Lnc_pc  $A -Lnc --persistent-conn
run Lc_pc   $A -L --persistent-conn -c
run Lone    $A -Ln -t [2001:db8::80]:80
run Lone_fwm $A -Ln -f 1 -6
run Lone_fwm4 $A -Ln -f 1
run Lone_stats $A -Ln --stats -u [2001:db8::53]:53
run Lone_bare $A -Ln -t 2001:db8::2
run Sone    $A -Sn -t [2001:db8::443]:443

# ---- malformed input: ipvsadm's own checks ----------------------------------------
run e01 $A -A -t [2001:db8::1 -s rr
run e02 $A -A -t 2001:db8::1]:80 -s rr
run e03 $A -A -t [2001:db8::1] -s rr
run e04 $A -A -t [2001:db8::1]80 -s rr
run e05 $A -A -t [2001:db8::1]: -s rr
run e06 $A -A -t [2001:db8::1]:65536 -s rr
run e07 $A -A -t 2001:db8::7 -s rr
run e08 $A -A -t [192.0.2.9]:80 -s rr
run e09 $A -A -t [fe80::1%lo]:80 -s rr
run e10 $A -A -t fe80::1%lo -s rr -p
run e11 $A -A -6 -f 3 -s rr
run e12 $A -A -t [2001:db8::7]:80 -6 -s rr
run e13 $A -A -t [2001:db8::7]:80 -s rr -p -M 129
run e14 $A -A -t [2001:db8::7]:80 -s rr -p -M 0
run e15 $A -A -t [2001:db8::7]:80 -s rr -p -M ffff::
run e16 $A -A -t [2001:db8::7]:80 -s rr -p -M 255.255.255.0
run e17 $A -A -t [2001:db8::7]:80 -s rr -p -M 64abc
run e18 $A -A -M 64 -t [2001:db8::8]:80 -s rr -p
run e19 $A -A -f 5 -M 64 -6 -s rr -p
run e20 $A -A -f 6 -6 -M 56 -s rr -p
run e21 $A -a -t [2001:db8::80]:80 -r 192.0.2.10:80
run e22 $A -a -t [2001:db8::80]:80 -r 192.0.2.10:80 -m
run e23 $A -a -t 192.0.2.1:80 -r [2001:db8::c9]:80 -g
run e24 $A -a -t [2001:db8::80]:80 -r [2001:db8::a0a4 -m
run e25 $A -a -t [2001:db8::80]:80 -r [2001:db8::a0a5] -m
run e26 $A -a -t [2001:db8::80]:80 -r 2001:db8::a0a6 -m
run e27 $A -a -t [2001:db8::80]:80 -r [fe80::1]:80 -m
run e28 $A -a -t [2001:db8::80]:80 -r [ff02::1]:80 -m
run e29 $A -A -t [ff02::1]:80 -s rr
run e30 $A -A -t [::]:80 -s rr
run e31 $A -a -t [2001:db8::80]:80 -r [::1]:80 -m
run e32 $A -D -t [2001:db8::99]:80
run e33 $A -e -t [2001:db8::80]:80 -r [2001:db8::99]:80 -m
run e34 $A -A -t [2001:db8::80]:80 -s rr
run e35 $A -a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m
run e36 $A -Z -t [2001:db8::80]:80
run e37 $A -A -f 7 -6 -6 -s rr
run e38 $A -A -t [2001:db8::1]:0x50 -s rr
run e39 $A -A -t [2001:db8::9]:80 -s rr -M 64
run e40 $A -a -f 1 -6 -r 192.0.2.77 -g
run e41 $A -a -f 1 -6 -r 192.0.2.77 -i
run e42 $A -A -t [2001:db8::1]:-1 -s rr
run e43 $A -A -t [::ffff:1.2.3.4 -s rr
run e44 $A -A -t []:80 -s rr
run e45 $A -A -f 8 -s rr -6
run e46 $A -E -t [2001:db8::80]:443 -s rr -p 10 -M 32
run e47 $A -A -t 2001:db8::1]:80 -6
run e48 $A --start-daemon master --mcast-interface lo --mcast-group 2001:db8::1
run e49 $A -a -u [2001:db8::53]:53 -r [2001:db8::5354] -m
run e50 $A -A -t [2001:DB8::A]:80 -s rr
run e51 $A -A -t [2001:db8::b]:80 -s rr -p 10 -M 64 -M 32
run e52 $A -A -f 9 -6 -s rr -M 200
run e53 $A -A -f 10 -M 255.255.0.0 -6 -s rr -p
run Sn_after $A -Sn

# ---- restore ---------------------------------------------------------------
$A -Sn >$O/restore_in.txt
run r01 $A -C
runin r02 $O/restore_in.txt $A -R
run r03 $A -Sn
cat >$O/restore_bad.txt <<'R'
-A -t [2001:db8::1]:80 -s rr
-A -t [2001:db8::1 -s rr
-A -t [2001:db8::2]:80 -s rr
R
run r04 $A -C
runin r05 $O/restore_bad.txt $A -R
run r06 $A -Sn
cat >$O/restore_bad2.txt <<'R'
-A -f 3 -6 -s rr -p 10 -M 64
-A -6 -f 4 -s rr
-A -f 5 -6 -s rr
R
run r07 $A -C
runin r08 $O/restore_bad2.txt $A -R
run r09 $A -Sn
cat >$O/restore_bad3.txt <<'R'
-A -t [2001:db8::1]:80 -s rr
-a -t [2001:db8::1]:80 -r 192.0.2.1:80 -m
-a -t [2001:db8::1]:80 -r 192.0.2.2:80 -i
-A -t [2001:db8::3]:80 -s rr -p -M 129
R
run r10 $A -C
runin r11 $O/restore_bad3.txt $A -R
run r12 $A -Sn

echo "=====BEGIN-TAR====="
tar -C $O -cf - . | base64
echo "=====END-TAR====="
