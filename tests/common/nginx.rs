//! nginx (Debian's nginx-light) in the foreground with a temporary config, serving a directory
//! on 127.0.0.1 over HTTPS with a certificate from a test CA made with `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; killed when dropped.
pub struct Nginx {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The test CA's certificate (PEM), what a client must trust.
    pub ca: PathBuf,
    child: Child,
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("running openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

impl Nginx {
    /// Serves `root` over HTTPS; scratch files go to `work`.
    pub fn start_tls(root: &Path, work: &Path) -> Nginx {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bty-test-ca"][..],
            ]
            .concat(),
            work,
        );
        openssl(
            &[
                &["req"][..],
                &ec[..],
                &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"][..],
            ]
            .concat(),
            work,
        );
        std::fs::write(
            work.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
            work,
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let w = work.display();
        let conf = format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\nevents {{ worker_connections 32; }}\n\
             http {{\n access_log off;\n client_body_temp_path {w}; proxy_temp_path {w}; fastcgi_temp_path {w}; uwsgi_temp_path {w}; scgi_temp_path {w};\n\
             server {{ listen {addr} ssl; ssl_certificate {w}/leaf.pem; ssl_certificate_key {w}/leaf.key; root {}; }}\n}}\n",
            root.display()
        );
        std::fs::write(work.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(work.join("nginx.conf"))
            .arg("-p")
            .arg(work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { addr, ca: work.join("ca.pem"), child }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master must live long enough to stop its worker, which
        // would otherwise outlive the test.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}
