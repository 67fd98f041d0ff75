//! A real `bty-web` for black-box tests: started on 127.0.0.1:0 with a scratch state dir and
//! no system configuration (`BTY_CONFIG_DIR` points at an empty directory), its port parsed
//! from the listening line, killed on drop. Requests go over HTTP with ureq.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A running bty-web.
pub struct WebServer {
    child: Option<Child>,
    pub base: String,
    pub addr: String,
    pub state: PathBuf,
    pub cookie: Option<String>,
    /// The session's CSRF token, sent as `X-CSRF-Token` with every state change by [`Self::send`].
    pub csrf: Option<String>,
    pub log: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

/// A ureq agent that returns every status and follows no redirect.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl WebServer {
    /// Starts bty-web on `state` (created by bty-web if missing) with extra environment.
    pub fn start_in(state: &Path, env: &[(&str, &str)]) -> WebServer {
        let etc = state.with_extension("etc");
        std::fs::create_dir_all(&etc).expect("creating empty config dir");
        let mut cmd = Command::new(super::bty_path());
        cmd.args(["web", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .env("BTY_CONFIG_DIR", &etc)
            .env_remove("BTY_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        WebServer::spawn(cmd, state)
    }

    /// Starts bty-web with a command of the caller's (another binary, a chroot) whose state
    /// directory, as seen from here, is `state`; waits for its "listening on" line.
    pub fn spawn(mut cmd: Command, state: &Path) -> WebServer {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting bty web");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("bty-web: listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("bty web did not start: {:?}", log.lock().unwrap());
            }
        };
        WebServer {
            child: Some(child),
            base: format!("http://{addr}"),
            addr,
            state: state.to_path_buf(),
            cookie: None,
            csrf: None,
            log,
            agent: agent(),
        }
    }

    /// Starts and logs in with the generated admin password.
    pub fn start_logged_in(state: &Path) -> WebServer {
        let mut s = WebServer::start_in(state, &[]);
        s.login();
        s
    }

    /// The generated admin password.
    pub fn password(&self) -> String {
        std::fs::read_to_string(self.state.join("admin-password")).expect("admin-password").trim().to_string()
    }

    /// Logs in; stores and returns the `bty-token=…` cookie pair.
    pub fn login(&mut self) -> String {
        let body = format!("password={}", self.password());
        let r = self.raw(
            "POST",
            "/ui/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.into_bytes(),
        );
        assert_eq!(r.status, 303, "login failed: {}", r.text());
        let cookie = r.header("set-cookie").expect("set-cookie").split(';').next().unwrap().to_string();
        self.cookie = Some(cookie.clone());
        let page = self.raw("GET", "/ui/account", &[("Cookie", &cookie)], Vec::new()).text();
        let at = page.find("name=\"csrf_token\" value=\"").expect("a csrf field on the account page") + 25;
        self.csrf = Some(page[at..at + 64].to_string());
        cookie
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request without the session cookie.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let mut b = ureq::http::Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body).expect("building request");
        let mut resp = self.agent.run(req).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.body_mut().with_config().limit(1 << 32).read_to_vec().unwrap_or_default();
        Resp { status, headers, body }
    }

    /// A request with the session cookie (when logged in) and, for a state change, the CSRF
    /// token header, as the UI's script sends them.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let (Some(token), false) = (&self.csrf, matches!(method, "GET" | "HEAD")) {
            all.push(("X-CSRF-Token", token.as_str()));
        }
        self.send_without_csrf(method, path, &all, body)
    }

    /// A request with the session cookie but no CSRF token added (to test the refusal).
    pub fn send_without_csrf(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(c) = &self.cookie {
            all.push(("Cookie", c.as_str()));
        }
        self.raw(method, path, &all, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], Vec::new())
    }

    pub fn put_json(&self, path: &str, json: &serde_json::Value) -> Resp {
        self.send("PUT", path, &[("Content-Type", "application/json")], json.to_string().into_bytes())
    }

    pub fn post_json(&self, path: &str, json: &serde_json::Value) -> Resp {
        self.send("POST", path, &[("Content-Type", "application/json")], json.to_string().into_bytes())
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.terminate_wait()
    }

    /// Waits up to 15 s for the process to exit (after a signal sent elsewhere).
    pub fn terminate_wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        for _ in 0..300 {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("bty web did not stop within 15 s of SIGTERM: {:?}", self.log.lock().unwrap());
    }

    /// The process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The stderr lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
