//! The control-socket client: one JSON request per line, one JSON response
//! line per request (see `xvs_core::api`).

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use xvs_core::api::{Request, Response};

/// A connection to xvsd.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the daemon's unix stream socket at `path`.
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let writer = UnixStream::connect(path)?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(Client { reader, writer })
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, req: &Request) -> Result<Response> {
        let mut line = serde_json::to_string(req).context("encoding request")?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .context("sending request to xvsd")?;
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .context("reading response from xvsd")?;
        if n == 0 {
            bail!("xvsd closed the connection without answering");
        }
        serde_json::from_str(answer.trim_end()).context("decoding response from xvsd")
    }
}
