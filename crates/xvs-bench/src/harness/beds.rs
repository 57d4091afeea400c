//! Testbeds and where a contender's traffic goes.

use std::fs;
use std::net::Ipv4Addr;

use anyhow::{anyhow, Result};
use xvs_testbed::{dr_rs_ip, rs_ip, Node, Proc, Testbed, CLIENT_IP, DR_CLIENT_IP, VIP};

use super::probes::wait_listen;
use super::{
    path_str, Bed, BedId, Contender, Harness, RsServer, Target, DIRECT_CLIENT, DIRECT_DEV,
    DIRECT_RS, UDP_PORT,
};

impl Harness {
    pub(super) fn make_bed(&self, id: BedId) -> Result<Bed> {
        let tb = match id {
            BedId::Nat => Testbed::nat(),
            BedId::Dr | BedId::Tun => Testbed::dr(),
        }
        .map_err(|e| anyhow!("{e}"))?;
        let bed = Bed { tb };
        let tb = &bed.tb;
        if id == BedId::Nat {
            tb.add_link(
                Node::Client,
                DIRECT_DEV,
                &format!("{DIRECT_CLIENT}/30"),
                Node::Rs(1),
                DIRECT_DEV,
                &format!("{DIRECT_RS}/30"),
            )
            .map_err(|e| anyhow!("{e}"))?;
        }
        if id != BedId::Nat {
            let mode = if id == BedId::Dr { "dr" } else { "tun" };
            for n in 1..=tb.rs_count() {
                tb.realserver(Node::Rs(n), &["setup", "--vip", VIP, "--mode", mode])
                    .map_err(|e| anyhow!("xvs-realserver setup in rs{n}: {e}"))?;
            }
        }
        for n in 1..=tb.rs_count() {
            match self.cfg.rs_server {
                RsServer::Nginx => {
                    self.rs_nginx(tb, n)?;
                }
                RsServer::Testsrv => {
                    tb.spawn(
                        Node::Rs(n),
                        &[
                            &self.bins.testsrv,
                            "http",
                            "--listen",
                            "0.0.0.0:80",
                            "--name",
                            &format!("rs{n}"),
                        ],
                    )
                    .map_err(|e| anyhow!("{e}"))?;
                }
            }
            wait_listen(tb, Node::Rs(n), "t", 80)?;
            // A bound UDP socket nobody reads: datagrams are counted on
            // the interface, fill the socket buffer and are dropped there.
            // A closed port would make every datagram cost a route lookup
            // for an ICMP port-unreachable (rate-limited only after that
            // lookup): ≈ 20 % of a forwarded packet's cost, the same for
            // every contender, diluting what the director adds.
            tb.spawn(
                Node::Rs(n),
                &[
                    &self.bins.testsrv,
                    "udp-sink",
                    "--listen",
                    &format!("0.0.0.0:{UDP_PORT}"),
                    "--name",
                    &format!("rs{n}"),
                ],
            )
            .map_err(|e| anyhow!("{e}"))?;
            wait_listen(tb, Node::Rs(n), "u", UDP_PORT)?;
        }
        println!("{:?} testbed up: {}", id, tb.namespaces().join(" "));
        Ok(bed)
    }

    pub(super) fn rs_nginx(&self, tb: &Testbed, n: u8) -> Result<Proc> {
        let dir = tb.run_dir().join(format!("nginx-rs{n}"));
        fs::create_dir_all(&dir)?;
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\n\
             error_log stderr warn;\nworker_rlimit_nofile 65536;\n\
             events {{ worker_connections 16384; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n\
             \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 server {{\n    listen 80 backlog=4096;\n    \
             location / {{ default_type text/plain; return 200 \"rs{n}\\n\"; }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, conf)?;
        let prefix = format!("{d}/");
        tb.spawn(
            Node::Rs(n),
            &[
                "nginx",
                "-p",
                &prefix,
                "-c",
                &path_str(path.clone()),
                "-e",
                "stderr",
            ],
        )
        .map_err(|e| anyhow!("{e}"))
    }

    // -------------------------------------------------------- contenders

    pub(super) fn target(&self, c: Contender) -> Target {
        let vip: Ipv4Addr = VIP.parse().expect("VIP");
        let nat_rs = vec![
            (Node::Rs(1), "eth0"),
            (Node::Rs(2), "eth0"),
            (Node::Rs(3), "eth0"),
        ];
        let nat = |url: String, dst: Ipv4Addr| Target {
            url,
            client_dev: "eth0",
            src: CLIENT_IP.parse().expect("ip"),
            dst,
            dst_mac: (Node::Director, "eth0"),
            count: nat_rs.clone(),
        };
        let dr = |url: String, dst: Ipv4Addr| Target {
            url,
            client_dev: "eth0",
            src: DR_CLIENT_IP.parse().expect("ip"),
            dst,
            dst_mac: (Node::Router, "eth0"),
            count: nat_rs.clone(),
        };
        match c {
            Contender::Direct => Target {
                url: format!("http://{DIRECT_RS}/"),
                client_dev: DIRECT_DEV,
                src: DIRECT_CLIENT.parse().expect("ip"),
                dst: DIRECT_RS.parse().expect("ip"),
                dst_mac: (Node::Rs(1), DIRECT_DEV),
                count: vec![(Node::Rs(1), DIRECT_DEV)],
            },
            Contender::Fwd => nat(
                format!("http://{}/", rs_ip(1)),
                rs_ip(1).parse().expect("ip"),
            ),
            Contender::XdpDrop => Target {
                count: vec![(Node::Director, "eth0")],
                ..nat(String::new(), vip)
            },
            Contender::XdpTx => Target {
                count: vec![(Node::Client, "eth0")],
                ..nat(String::new(), vip)
            },
            Contender::DirectDr => dr(
                format!("http://{}/", dr_rs_ip(1)),
                dr_rs_ip(1).parse().expect("ip"),
            ),
            Contender::IpvsDr
            | Contender::IpvsTun
            | Contender::XvsDr
            | Contender::XvsDrXdp
            | Contender::XvsTun
            | Contender::XvsTunXdp => dr(format!("http://{VIP}/"), vip),
            _ => nat(format!("http://{VIP}/"), vip),
        }
    }
}
