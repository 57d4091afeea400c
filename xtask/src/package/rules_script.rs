//! `--check` of `xvs-rules` on its own, with a fake xvsadm that records
//! its calls: the cases the boot check does not reach (a save that fails
//! keeps the old file, a non-empty table is never restored onto,
//! `XVS_RULES_SAVE_ON_STOP=no`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// A fake xvsadm: `-S` prints `$FAKE_TABLE`'s contents, `-R` appends its
/// stdin to `$FAKE_LOG.R`, every call is logged; `$FAKE_FAIL` makes it
/// fail.
const FAKE_XVSADM: &str = "#!/bin/sh\n\
    echo \"$*\" >> \"$FAKE_LOG\"\n\
    [ -z \"${FAKE_FAIL:-}\" ] || exit 2\n\
    case \"$1\" in\n\
    -S) cat \"$FAKE_TABLE\" ;;\n\
    -R) cat >> \"$FAKE_LOG.R\" ;;\n\
    esac\n";

const RULES: &str = "# ipvsadm.rules\n-A -t 192.0.2.10:80 -s rr\n";
const TABLE: &str = "-A -t 198.51.100.10:80 -s wrr\n";

pub(crate) fn run(script: &Path, scratch: &Path) -> Result<()> {
    std::fs::create_dir_all(scratch)?;
    let fake = scratch.join("xvsadm");
    std::fs::write(&fake, FAKE_XVSADM)?;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    let rules = scratch.join("ipvsadm.rules");
    let table = scratch.join("table");
    let log = scratch.join("log");
    let restored = scratch.join("log.R");
    let reset = |table_text: &str| -> Result<()> {
        std::fs::write(&rules, RULES)?;
        std::fs::write(&table, table_text)?;
        for f in [&log, &restored] {
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    };
    let run = |verb: &str, env: &[(&str, &str)]| -> Result<bool> {
        let status = Command::new(script)
            .arg(verb)
            .env("XVSADM", &fake)
            .env("XVS_RULES_FILE", &rules)
            .env("FAKE_TABLE", &table)
            .env("FAKE_LOG", &log)
            .envs(env.iter().copied())
            .output()
            .with_context(|| format!("running xvs-rules {verb}"))?
            .status;
        Ok(status.success())
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();

    reset(TABLE)?;
    ensure!(
        !run("save", &[("FAKE_FAIL", "1")])?,
        "a failed save succeeded"
    );
    ensure!(read(&rules) == RULES, "a failed save changed the file");
    ensure!(
        run("stop", &[("FAKE_FAIL", "1")])?,
        "a failed save failed stop"
    );
    ensure!(read(&rules) == RULES, "a failed stop changed the file");

    reset(TABLE)?;
    ensure!(run("save", &[])?, "save failed");
    ensure!(
        read(&rules) == format!("# ipvsadm.rules\n{TABLE}"),
        "saved: {}",
        read(&rules)
    );

    reset(TABLE)?;
    ensure!(run("start", &[])?, "start failed");
    ensure!(
        !read(&log).contains("-R"),
        "start restored onto a non-empty table"
    );

    reset("")?;
    ensure!(run("start", &[])?, "start failed");
    ensure!(
        read(&restored) == "-A -t 192.0.2.10:80 -s rr\n",
        "restored: {:?}",
        read(&restored)
    );

    reset(TABLE)?;
    ensure!(run("load", &[])?, "load failed");
    ensure!(
        read(&log).lines().collect::<Vec<_>>() == ["-C", "-R"],
        "load ran: {}",
        read(&log)
    );

    reset(TABLE)?;
    ensure!(run("stop", &[("XVS_RULES_SAVE_ON_STOP", "no")])?, "stop");
    ensure!(
        read(&rules) == RULES && read(&log).is_empty(),
        "XVS_RULES_SAVE_ON_STOP=no saved"
    );

    std::fs::remove_dir_all(scratch)?;
    println!("xvs-rules: save keeps the old file on failure, start restores only onto an empty table, load clears first, SAVE_ON_STOP=no");
    Ok(())
}
