//! An in-memory host for the unit tests.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fake {
    pub lo: BTreeSet<IpAddr>,
    pub other: BTreeMap<IpAddr, String>,
    pub devs: BTreeSet<String>,
    pub sysctls: BTreeMap<String, String>,
    pub modules_available: BTreeSet<String>,
    pub modules_loaded: BTreeSet<String>,
    pub up: BTreeSet<String>,
    pub fou: BTreeSet<u16>,
    pub decap: BTreeMap<String, DecapSpec>,
    pub default_dev: Option<String>,
}

impl Fake {
    /// A host with eth0, Debian-like defaults.
    pub fn new() -> Fake {
        let mut sysctls = BTreeMap::new();
        for dev in ["all", "default", "lo", "eth0", "eth1"] {
            sysctls.insert(format!("net.ipv4.conf.{dev}.arp_ignore"), "0".into());
            sysctls.insert(format!("net.ipv4.conf.{dev}.arp_announce"), "0".into());
            sysctls.insert(format!("net.ipv4.conf.{dev}.rp_filter"), "2".into());
        }
        Fake {
            lo: BTreeSet::from(["127.0.0.1".parse().unwrap()]),
            other: BTreeMap::new(),
            devs: ["lo", "eth0", "eth1"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            sysctls,
            modules_available: BTreeSet::new(),
            modules_loaded: BTreeSet::new(),
            up: ["lo", "eth0", "eth1"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            fou: BTreeSet::new(),
            decap: BTreeMap::new(),
            default_dev: Some("eth0".into()),
        }
    }

    pub fn with_kernel_tunnels(mut self) -> Fake {
        self.modules_available = ["ipip", "fou"].iter().map(|s| s.to_string()).collect();
        self
    }
}

fn nope(what: String) -> Error {
    Error::Conflict(what)
}

impl System for Fake {
    fn lo_has(&mut self, vip: IpAddr) -> Result<bool, Error> {
        Ok(self.lo.contains(&vip))
    }
    fn other_devs_with(&mut self, vip: IpAddr) -> Result<Vec<String>, Error> {
        Ok(self.other.get(&vip).into_iter().cloned().collect())
    }
    fn lo_add(&mut self, vip: IpAddr) -> Result<(), Error> {
        assert!(self.lo.insert(vip), "{vip} added twice");
        Ok(())
    }
    fn lo_del(&mut self, vip: IpAddr) -> Result<(), Error> {
        assert!(self.lo.remove(&vip), "{vip} removed but absent");
        Ok(())
    }
    fn dev_exists(&mut self, dev: &str) -> bool {
        self.devs.contains(dev)
    }
    fn default_dev(&mut self) -> Result<String, Error> {
        self.default_dev
            .clone()
            .ok_or(Error::NoDefaultDev(String::new()))
    }
    fn sysctl_get(&mut self, key: &SysctlKey) -> Result<String, Error> {
        self.sysctls
            .get(&key.to_string())
            .cloned()
            .ok_or_else(|| nope(format!("no sysctl {key}")))
    }
    fn sysctl_set(&mut self, key: &SysctlKey, value: &str) -> Result<(), Error> {
        let v = self
            .sysctls
            .get_mut(&key.to_string())
            .ok_or_else(|| nope(format!("no sysctl {key}")))?;
        *v = value.to_string();
        Ok(())
    }
    fn module_loaded(&mut self, module: &str) -> bool {
        self.modules_loaded.contains(module)
    }
    fn module_available(&mut self, module: &str) -> bool {
        self.modules_available.contains(module) || self.modules_loaded.contains(module)
    }
    fn module_load(&mut self, module: &str) -> Result<(), Error> {
        if !self.modules_available.contains(module) {
            return Err(nope(format!("no module {module}")));
        }
        self.modules_loaded.insert(module.to_string());
        if module == "ipip" {
            self.devs.insert(TUNL0.into());
            for name in ["arp_ignore", "arp_announce"] {
                self.sysctls
                    .insert(format!("net.ipv4.conf.{TUNL0}.{name}"), "0".into());
            }
            self.sysctls
                .insert(format!("net.ipv4.conf.{TUNL0}.rp_filter"), "2".into());
        }
        Ok(())
    }
    fn link_is_up(&mut self, dev: &str) -> Result<bool, Error> {
        if !self.devs.contains(dev) {
            return Err(nope(format!("no device {dev}")));
        }
        Ok(self.up.contains(dev))
    }
    fn link_set_up(&mut self, dev: &str, up: bool) -> Result<(), Error> {
        if !self.devs.contains(dev) {
            return Err(nope(format!("no device {dev}")));
        }
        if up {
            self.up.insert(dev.to_string());
        } else {
            self.up.remove(dev);
        }
        Ok(())
    }
    fn fou_ports(&mut self) -> Result<BTreeSet<u16>, Error> {
        Ok(self.fou.clone())
    }
    fn fou_add(&mut self, port: u16) -> Result<(), Error> {
        assert!(self.modules_loaded.contains("fou"));
        assert!(self.fou.insert(port));
        Ok(())
    }
    fn fou_del(&mut self, port: u16) -> Result<(), Error> {
        assert!(self.fou.remove(&port));
        Ok(())
    }
    fn decap_attached(&mut self, dev: &str) -> Result<bool, Error> {
        Ok(self.decap.contains_key(dev))
    }
    fn decap_attach(&mut self, dev: &str, spec: &DecapSpec) -> Result<(), Error> {
        assert!(!spec.vips.is_empty());
        self.decap.insert(dev.to_string(), spec.clone());
        Ok(())
    }
    fn decap_detach(&mut self, dev: &str) -> Result<(), Error> {
        assert!(self.decap.remove(dev).is_some());
        Ok(())
    }
}
