//! A real SMTP server on loopback for the tests: Debian's `python3-aiosmtpd`, run with the system
//! interpreter, writing each message it accepts to a folder the test reads. It can be stopped and
//! started again on the same port (the mail server "down").

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::unavailable;

const SERVER: &str = r#"
import json, os, sys, time
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]

class Keep:
    async def handle_DATA(self, server, session, envelope):
        name = "%020d" % time.time_ns()
        tmp = os.path.join(out, "." + name)
        with open(tmp, "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "data": envelope.content.decode("utf-8", "replace")}, f)
        os.rename(tmp, os.path.join(out, name + ".json"))
        return "250 kept"

c = Controller(Keep(), hostname="127.0.0.1", port=port)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// A message the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message, headers and body.
    pub data: String,
}

impl Received {
    /// A header's value (the first of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.replace("\r\n ", " ")
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }

    /// The body, with quoted-printable soft line breaks joined (the rest of the encoding is
    /// left: the tests' texts are ASCII).
    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .or_else(|| self.data.split_once("\n\n"))
            .map(|(_, b)| {
                b.replace("\r\n", "\n")
                    .replace("=\n", "")
                    .replace("=3D", "=")
            })
            .unwrap_or_default()
    }
}

pub struct SmtpServer {
    pub port: u16,
    dir: TempDir,
    script: PathBuf,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts one, or skips (None) when aiosmtpd is missing and not required.
    pub fn start() -> Option<SmtpServer> {
        let ok = Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return unavailable("smtp", "/usr/bin/python3 cannot import aiosmtpd");
        }
        let dir = tempfile::tempdir().expect("smtp dir");
        let script = dir.path().join("server.py");
        std::fs::write(&script, SERVER).expect("smtp script");
        std::fs::create_dir(dir.path().join("mail")).expect("mail dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = SmtpServer {
            port,
            dir,
            script,
            child: None,
        };
        s.up();
        Some(s)
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Starts (again) on the same port, and waits until it answers.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "the SMTP server is running");
        let child = Command::new("/usr/bin/python3")
            .arg(&self.script)
            .arg(self.port.to_string())
            .arg(self.mail_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the SMTP server did not start on port {}", self.port);
    }

    /// Stops it: connections are refused until [`SmtpServer::up`].
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message accepted so far, in the order they arrived.
    pub fn received(&self) -> Vec<Received> {
        read_all(&self.mail_dir())
    }

    /// Waits (at most `within`) until at least `n` messages have arrived; returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let end = std::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || std::time::Instant::now() > end {
                return got;
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn read_all(dir: &Path) -> Vec<Received> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.down();
    }
}
