//! `serve` itself, whatever the route: the lingering close after a refusal,
//! the cap on open connections and the open-files limit, and native TLS
//! with a certificate reloaded on SIGHUP. A real `rp-devops serve` process,
//! driven by raw sockets, curl and our own client.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::release::*;
use support::tls::TestCa;

const MB: usize = 1024 * 1024;

fn healthz(port: u16) -> (u16, String) {
    http(
        port,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    )
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
}

/// Whether the server closed `stream` (EOF or reset) within 20 s.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Whether `stream` is still open: nothing to read and no EOF for 300 ms.
fn still_open(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("read timeout");
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

// ---- lingering close ----

#[test]
fn a_refused_body_is_read_and_thrown_away_so_the_answer_arrives() {
    // A body larger than the socket buffers on both sides: closing without
    // reading it would reset the connection under the client's writes.
    let rx = Receiver::start_with_max("32MiB");
    let data = vec![9u8; 24 * MB];
    let body = Form::new()
        .field("product", "plain")
        .field("version", "1")
        .file("a.tgz", &data)
        .finish();
    let mut stream = connect(rx.port);
    // No Expect: the body follows the head at once, as nginx sends it.
    stream
        .write_all(Form::new().head("wrong", body.len()).as_bytes())
        .unwrap();
    stream
        .write_all(&body)
        .expect("serve reads the refused body instead of resetting the connection");
    let (status, answer) = read_answer(&mut stream);
    assert_eq!(status, 401, "{answer}");
    assert_eq!(json(&answer)["error"], "wrong release secret");

    // The same for a refusal found in the form: an unknown product.
    let body = Form::new()
        .field("product", "nope")
        .field("version", "1")
        .file("a.tgz", &data)
        .finish();
    let mut stream = connect(rx.port);
    stream
        .write_all(Form::new().head(SECRET, body.len()).as_bytes())
        .unwrap();
    stream
        .write_all(&body)
        .expect("the rest of the body is read");
    let (status, answer) = read_answer(&mut stream);
    assert_eq!(status, 404, "{answer}");
    assert!(
        json(&answer)["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown product")
    );
    // Read, not kept.
    assert_eq!(rx.files(), Vec::<String>::new());
}

#[test]
fn lingering_is_bounded_by_max_size_and_by_serve_linger() {
    let mut rx = Receiver::unstarted("1MiB");
    rx.add_config("serve:\n  linger: 2s\n");
    rx.spawn();
    // A refused client that keeps sending: serve reads at most max_size (plus
    // the form allowance, 2 MiB here), then stops reading; its writes block
    // and the connection is closed at the linger's end.
    let mut stream = connect(rx.port);
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(Form::new().head("wrong", 256 * MB).as_bytes())
        .unwrap();
    let chunk = vec![0u8; MB];
    let mut sent = 0;
    while sent < 256 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 64, "serve read {sent} MiB of a refused body");
    // A refused client that sends nothing more: closed after serve.linger.
    let mut stream = connect(rx.port);
    stream
        .write_all(Form::new().head("wrong", 10 * MB).as_bytes())
        .unwrap();
    stream.write_all(&[0u8; 1000]).unwrap();
    assert!(closed_by_server(&mut stream), "closed after serve.linger");
}

#[test]
fn a_client_that_waits_for_100_continue_is_answered_and_closed_at_once() {
    let rx = Receiver::start();
    // It sent no body (and never will): nothing to linger for. Some clients
    // (ureq) wait for the close; it must not take serve.linger.
    let mut stream = connect(rx.port);
    let head = Form::new()
        .head("wrong", 100 * MB)
        .replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("closed well within serve.linger (30 s)");
    let (status, body) = parse_answer(&raw);
    assert_eq!(status, 401, "{body}");
    assert!(!String::from_utf8_lossy(&raw).contains("100 Continue"));
}

// ---- connections ----

#[test]
fn idle_connections_past_the_cap_make_room_for_new_ones() {
    let mut rx = Receiver::unstarted("4MiB");
    rx.add_config("serve:\n  max_connections: 8\n");
    rx.spawn();
    // Eight connections that never send a request take every slot...
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(rx.port)).collect();
    // ...and /healthz still answers: the connection idle the longest made room.
    let (status, body) = healthz(rx.port);
    assert_eq!(status, 200, "{body}");
    assert!(
        closed_by_server(&mut idle[0]),
        "the oldest idle connection was closed"
    );
    assert!(still_open(&mut idle[7]), "the newest idle connection stays");
    assert!(
        rx.log().contains("at the connection limit (8"),
        "{}",
        rx.log()
    );
}

#[test]
fn when_every_connection_is_busy_a_new_one_is_refused_with_503() {
    let mut rx = Receiver::unstarted("4MiB");
    rx.add_config("serve:\n  max_connections: 2\n");
    rx.spawn();
    let upload = |version: &str, seed: u8| {
        let data = vec![seed; MB];
        Form::new()
            .field("product", "plain")
            .field("version", version)
            .file("b.tgz", &data)
            .field("md5", &md5_of(&data))
            .finish()
    };
    let first = rx.send_half(upload("1", 1));
    let second = rx.send_half(upload("2", 2));
    wait_until("both uploads to stream", || {
        rx.files()
            .iter()
            .filter(|f| f.starts_with(".rp-upload-"))
            .count()
            == 2
    });
    // A third connection: the two are busy, so it is refused at once.
    let mut third = connect(rx.port);
    let mut raw = Vec::new();
    let _ = third.read_to_end(&mut raw);
    let (status, body) = parse_answer(&raw);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(
        json(&body)["error"],
        "too many connections; try again later"
    );
    // The busy ones were left alone.
    assert_eq!(first.finish().0, 201);
    assert_eq!(second.finish().0, 201);
    assert_eq!(healthz(rx.port).0, 200);
    rx.assert_only_releases(&["plain/1/b.tgz", "plain/2/b.tgz"]);
}

#[test]
fn serve_raises_its_open_files_limit_to_the_hard_one() {
    // Soft 64: 200 idle connections would use every descriptor and lock
    // /healthz out, had serve not raised the soft limit.
    let mut rx = Receiver::unstarted("4MiB");
    rx.spawn_under(&["prlimit", "--nofile=64:1024", "--"], &[]);
    // prlimit execs serve: the child is serve itself.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", rx.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/PID/limits");
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["1024", "1024"], "soft limit raised: {open_files}");
    // The cap is sized from the raised limit, not the inherited 64.
    assert!(!rx.log().contains("is 64 "), "{}", rx.log());
    let _idle: Vec<TcpStream> = (0..200).map(|_| connect(rx.port)).collect();
    let (status, body) = healthz(rx.port);
    assert_eq!(status, 200, "{body}\n{}", rx.log());
}

#[test]
fn with_a_low_hard_limit_the_cap_is_lowered_and_healthz_still_answers() {
    let mut rx = Receiver::unstarted("4MiB");
    rx.spawn_under(&["prlimit", "--nofile=64:64", "--"], &[]);
    assert!(
        rx.log()
            .contains("serve.max_connections 1024 lowered to 32"),
        "{}",
        rx.log()
    );
    let _idle: Vec<TcpStream> = (0..200).map(|_| connect(rx.port)).collect();
    let (status, body) = healthz(rx.port);
    assert_eq!(status, 200, "{body}\n{}", rx.log());
    // And an upload gets through too.
    let file = artifact(rx.root(), "l.tgz", 100_000, 51);
    let out = rx.upload(&file, "plain", &["version=1"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---- native TLS ----

/// `release upload` of `file` to `url` with extra environment variables.
fn upload_with_env(rx: &Receiver, file: &Path, version: &str, env: &[(&str, &str)]) -> Output {
    let mut all = vec![("RP_RELEASE_SECRET", SECRET)];
    all.extend_from_slice(env);
    rp(
        rx.root(),
        &[
            "release",
            "upload",
            file.to_str().unwrap(),
            "--url",
            &rx.url(),
            "--product",
            "plain",
            "--meta",
            &format!("version={version}"),
        ],
        &all,
    )
}

fn curl_healthz(url: &str, ca: &Path) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca)
        .arg(format!("{url}/healthz"))
        .output()
        .expect("curl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn native_tls_serves_clients_that_trust_its_ca() {
    let mut rx = Receiver::unstarted("4MiB");
    let ca = TestCa::new(rx.root());
    rx.spawn_under(
        &[],
        &[
            "--tls-cert",
            ca.cert_file.to_str().unwrap(),
            "--tls-key",
            ca.key_file.to_str().unwrap(),
        ],
    );
    assert_eq!(rx.scheme, "https");
    assert!(rx.url().starts_with("https://127.0.0.1:"));
    let file = artifact(rx.root(), "t.tgz", 300_000, 52);
    let ca_file = ca.ca_file.to_str().unwrap();

    // A client that does not know the CA: refused, once, with the hint.
    let out = upload_with_env(&rx, &file, "1", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CI_SERVER_TLS_CA_FILE"), "{err}");
    assert!(!err.contains("retrying"), "{err}");

    // The CA through GitLab Runner's variable, or instead of the system store.
    let out = upload_with_env(&rx, &file, "1", &[("CI_SERVER_TLS_CA_FILE", ca_file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = upload_with_env(&rx, &file, "2", &[("SSL_CERT_FILE", ca_file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(curl_healthz(&rx.url(), &ca.ca_file), "{\"status\":\"ok\"}");
    rx.assert_only_releases(&["plain/1/t.tgz", "plain/2/t.tgz"]);
    assert!(
        rx.log().contains("\"POST /api/v1/releases\" 201"),
        "{}",
        rx.log()
    );
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_one_is_not_taken() {
    let mut rx = Receiver::unstarted("4MiB");
    // The config keys, relative to the config file.
    let tls_dir = rx.root().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let first = TestCa::new(&tls_dir);
    rx.add_config("serve:\n  tls_cert: tls/server.pem\n  tls_key: tls/server.key\n");
    rx.spawn();
    assert_eq!(rx.scheme, "https");
    let next_dir = rx.root().join("next");
    std::fs::create_dir(&next_dir).unwrap();
    let next = TestCa::new(&next_dir);
    let ok = |ca: &TestCa| curl_healthz(&rx.url(), &ca.ca_file) == "{\"status\":\"ok\"}";
    assert!(ok(&first) && !ok(&next));

    // A half-written renewal: refused, the certificate in use stays.
    std::fs::write(
        tls_dir.join("server.pem"),
        "-----BEGIN CERTIFICATE-----\ntruncated",
    )
    .unwrap();
    rx.signal("HUP");
    wait_until("the failed reload to be logged", || {
        rx.log()
            .contains("SIGHUP: keeping the TLS certificate in use")
    });
    assert!(ok(&first), "{}", rx.log());

    // The renewed pair: taken for new connections, no restart.
    std::fs::copy(&next.cert_file, tls_dir.join("server.pem")).unwrap();
    std::fs::copy(&next.key_file, tls_dir.join("server.key")).unwrap();
    rx.signal("HUP");
    wait_until("the reload to be logged", || {
        rx.log().contains("SIGHUP: reloaded the TLS certificate")
    });
    assert!(ok(&next) && !ok(&first), "{}", rx.log());
    let file = artifact(rx.root(), "n.tgz", 1000, 53);
    let out = upload_with_env(
        &rx,
        &file,
        "1",
        &[("CI_SERVER_TLS_CA_FILE", next.ca_file.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_certificate_that_does_not_load_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other = TestCa::new(&other);
    std::fs::write(dir.path().join("rp-devops.yml"), "gitlab: {}\n").unwrap();
    // A key that is not the certificate's.
    let out = rp(
        dir.path(),
        &[
            "serve",
            "--dry-run",
            "--tls-cert",
            ca.cert_file.to_str().unwrap(),
            "--tls-key",
            other.key_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("do not make a usable pair"),
        "{}",
        stderr(&out)
    );
    // One of the two keys alone.
    std::fs::write(
        dir.path().join("rp-devops.yml"),
        "serve:\n  tls_cert: server.pem\n",
    )
    .unwrap();
    let out = rp(dir.path(), &["serve", "--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("serve.tls_key"), "{}", stderr(&out));
    // Both: the dry run says https.
    std::fs::write(
        dir.path().join("rp-devops.yml"),
        "serve:\n  tls_cert: server.pem\n  tls_key: server.key\n",
    )
    .unwrap();
    let out = rp(dir.path(), &["serve", "--dry-run"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("https://127.0.0.1:8080"),
        "{}",
        stderr(&out)
    );
}
