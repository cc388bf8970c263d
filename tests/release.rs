//! The release pipeline end to end: a real `rp-devops serve` process driven by
//! our `release upload`, by plain `curl -F`, and by raw sockets for the cases
//! a well-behaved client cannot produce. Every failure case checks the release
//! directory afterwards: finished releases only, no temporary files.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::release::*;

const MB: usize = 1024 * 1024;

#[test]
fn upload_with_our_client_stores_runs_script_and_answers_json() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "app-1.2.3.tgz", 3 * MB, 1);
    let out = rx.upload(&file, "app", &["version=1.2.3", "channel=stable"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = json(&stdout(&out));
    assert_eq!(answer["product"], "app");
    assert_eq!(answer["version"], "1.2.3");
    assert_eq!(answer["md5"], md5_hex(&file));
    assert_eq!(answer["bytes"], 3 * MB as u64);
    assert_eq!(answer["script"]["exit_code"], 0);
    let tail = answer["script"]["output_tail"].as_str().unwrap();
    assert!(
        tail.contains("args=app-1.2.3.tgz app-1.2.3.tgz.env"),
        "{tail}"
    );
    // Metadata reaches the script's environment; the server's secret does not.
    assert!(tail.contains("env channel=stable secret=unset"), "{tail}");

    let stored = rx.rel().join("app/1.2.3/app-1.2.3.tgz");
    assert_eq!(answer["path"], stored.display().to_string());
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let env = std::fs::read_to_string(rx.rel().join("app/1.2.3/app-1.2.3.tgz.env")).unwrap();
    for line in [
        "channel='stable'",
        "version='1.2.3'",
        "RELEASE_PRODUCT='app'",
        "RELEASE_VERSION='1.2.3'",
        "RELEASE_FILE='app-1.2.3.tgz'",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in {env}");
    }
    assert!(
        env.contains(&format!("RELEASE_MD5='{}'", md5_hex(&file))),
        "{env}"
    );
    rx.assert_only_releases(&["app/1.2.3/app-1.2.3.tgz"]);
    assert_eq!(rx.runs("app"), 1);

    // The access log has one line per request, and no secret anywhere.
    let log = rx.log();
    assert!(log.contains("\"POST /api/v1/releases\" 201"), "{log}");
    assert!(
        !log.contains(SECRET) && !stdout(&out).contains(SECRET) && !stderr(&out).contains(SECRET)
    );
}

#[test]
fn curl_with_md5_before_and_after_the_file() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "a.tgz", MB, 2);
    let md5 = md5_hex(&file);
    // md5 first.
    let (status, body) = rx.curl(
        Some(SECRET),
        &[
            format!("md5={md5}"),
            "product=app".into(),
            "version=1.0".into(),
            "channel=beta".into(),
            "file=@a.tgz".into(),
        ],
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["md5"], md5);
    // md5 last, metadata after the file too.
    let (status, body) = rx.curl(
        Some(SECRET),
        &[
            "file=@a.tgz".into(),
            "product=app".into(),
            "version=2.0".into(),
            "channel=beta".into(),
            format!("md5={}", md5.to_uppercase()),
        ],
    );
    assert_eq!(status, 201, "{body}");
    rx.assert_only_releases(&["app/1.0/a.tgz", "app/2.0/a.tgz"]);
}

#[test]
fn the_client_sends_an_exact_content_length_not_chunks() {
    // A bare socket stands in for the server, to see the bytes on the wire.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = artifact(dir.path(), "w.tgz", 300_000, 3);
    let expected_md5 = md5_hex(&file);
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let head = read_request_head(&mut stream).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("content-length header")
            .trim()
            .parse()
            .unwrap();
        if head.contains("expect: 100-continue") {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).unwrap();
        let reply =
            br#"{"product":"p","version":"1","path":"/x","md5":"m","bytes":1,"script":null}"#;
        write!(
            stream,
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.len()
        )
        .unwrap();
        stream.write_all(reply).unwrap();
        (head, body)
    });
    let out = rp(
        dir.path(),
        &[
            "release",
            "upload",
            "w.tgz",
            "--product",
            "p",
            "--meta",
            "version=1",
        ],
        &[
            ("RP_RELEASE_SECRET", SECRET),
            ("RP_RELEASE_URL", &format!("http://127.0.0.1:{port}")),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (head, body) = server.join().unwrap();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(head.contains(&format!("authorization: bearer {}", SECRET.to_lowercase())));
    let text = String::from_utf8_lossy(&body);
    let file_at = text.find("filename=\"w.tgz\"").unwrap();
    let md5_at = text.find(&expected_md5).expect("md5 in body");
    assert!(md5_at > file_at, "md5 goes after the file");
    assert!(text.ends_with("--\r\n"));
    assert!(!stdout(&out).contains(SECRET) && !stderr(&out).contains(SECRET));
}

#[test]
fn wrong_or_missing_secret_is_401_before_the_body_is_read() {
    let rx = Receiver::start();
    // A raw client announces 100 MB and sends none of it: the 401 comes anyway.
    let mut stream = TcpStream::connect(("127.0.0.1", rx.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let form = Form::new();
    stream
        .write_all(form.head("wrong", 100 * MB).as_bytes())
        .unwrap();
    let started = Instant::now();
    let (status, body) = read_one_answer(&mut stream);
    assert_eq!(status, 401, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered without the body"
    );
    assert_eq!(json(&body)["error"], "wrong release secret");

    // curl with a 3 MB file: it asks 100-continue and sends no body on 401.
    let file = artifact(rx.root(), "big.tgz", 3 * MB, 4);
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_upload}",
        ])
        .args([
            "-H",
            "Authorization: Bearer nope",
            "-F",
            "product=app",
            "-F",
        ])
        .arg(format!("file=@{}", file.display()))
        .arg(format!("{}/api/v1/releases", rx.url()))
        .output()
        .unwrap();
    let text = stdout(&out);
    let (code, uploaded) = text.split_once(' ').unwrap();
    assert_eq!(code, "401");
    assert!(
        uploaded.parse::<f64>().unwrap() < MB as f64,
        "curl sent {uploaded} bytes"
    );

    // No header at all.
    let (status, _) = rx.curl(None, &["product=app".into(), "file=@big.tgz".into()]);
    assert_eq!(status, 401);
    // Our client: final, message shown, exit 1.
    let out = upload_to(
        rx.root(),
        &rx.url(),
        &file,
        "app",
        &["version=1", "channel=x"],
        "not-the-secret",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 401: wrong release secret"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
    assert_eq!(rx.files(), Vec::<String>::new());
    assert!(!rx.log().contains("nope") && !rx.log().contains("not-the-secret"));
}

#[test]
fn unknown_product_bad_names_and_missing_fields_are_refused() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "a.tgz", 200_000, 5);
    let md5 = md5_hex(&file);
    let base = |product: &str, version: &str, file_spec: &str| -> Vec<String> {
        vec![
            format!("product={product}"),
            format!("version={version}"),
            "channel=stable".into(),
            format!("md5={md5}"),
            file_spec.into(),
        ]
    };
    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        (base("nope", "1", "file=@a.tgz"), 404, "unknown product"),
        (
            base("../app", "1", "file=@a.tgz"),
            422,
            "product \"../app\"",
        ),
        (
            base("app", "../../etc", "file=@a.tgz"),
            422,
            "version \"../../etc\"",
        ),
        (base("app", "1/2", "file=@a.tgz"), 422, "version \"1/2\""),
        (
            base("app", "1", "file=@a.tgz;filename=../evil.tgz"),
            422,
            "file name \"../evil.tgz\"",
        ),
        (
            base("app", "1", "file=@a.tgz;filename=x/y.tgz"),
            422,
            "file name \"x/y.tgz\"",
        ),
        (
            vec![
                "product=app".into(),
                "version=1".into(),
                format!("md5={md5}"),
                "file=@a.tgz".into(),
            ],
            422,
            "missing required metadata for app: channel",
        ),
        (
            vec![
                "product=app".into(),
                "channel=x".into(),
                format!("md5={md5}"),
                "file=@a.tgz".into(),
            ],
            422,
            "missing required metadata for app: version",
        ),
        (
            vec![
                "product=app".into(),
                "version=1".into(),
                "channel=x".into(),
                "file=@a.tgz".into(),
            ],
            422,
            "no `md5` field",
        ),
        (
            vec![
                "product=app".into(),
                "version=1".into(),
                "channel=x".into(),
                "md5=00000000000000000000000000000000".into(),
                "file=@a.tgz".into(),
            ],
            422,
            "MD5 mismatch",
        ),
        (
            vec![
                "product=app".into(),
                "version=1".into(),
                "channel=x".into(),
                "PATH=/evil".into(),
                format!("md5={md5}"),
                "file=@a.tgz".into(),
            ],
            422,
            "metadata key \"PATH\"",
        ),
    ];
    for (form, expected, message) in cases {
        let (status, body) = rx.curl(Some(SECRET), &form);
        assert_eq!(status, expected, "{form:?}: {body}");
        let error = json(&body)["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(message), "{form:?}: {error}");
    }
    // Our client shows a 4xx and does not retry it.
    let out = rx.upload(&file, "nope", &["version=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 404: unknown product \"nope\""),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("retrying"), "{}", stderr(&out));
    // --json prints the server's answer, error included.
    let answer = json(&stdout(&out));
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown product"),
        "{answer}"
    );
    assert_eq!(rx.log().matches("\"POST /api/v1/releases\" 404").count(), 2);
    assert_eq!(rx.files(), Vec::<String>::new());
    assert_eq!(rx.runs("app"), 0);
}

#[test]
fn over_max_size_is_413_and_nothing_stays() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "huge.tgz", 5 * MB, 6);
    // Declared length over the limit: refused from the head.
    let out = rx.upload(&file, "app", &["version=1", "channel=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HTTP 413"), "{}", stderr(&out));
    // A body that claims less than it sends is caught while streaming.
    let data = std::fs::read(&file).unwrap();
    let form = Form::new()
        .field("product", "plain")
        .field("version", "1")
        .file("huge.tgz", &data);
    let body = form.finish();
    let mut stream = TcpStream::connect(("127.0.0.1", rx.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /api/v1/releases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: multipart/form-data; boundary=testboundary7d3a\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || stream.write_all(chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.read_to_end(&mut answer);
    let (status, text) = parse_answer(&answer);
    assert_eq!(status, 413, "{text}");
    rx.wait_no_temp_files();
    assert_eq!(rx.files(), Vec::<String>::new());
}

#[test]
fn client_killed_mid_upload_leaves_nothing_and_releases_the_version() {
    let rx = Receiver::start();
    let data = vec![7u8; 2 * MB];
    let body = Form::new()
        .field("product", "plain")
        .field("version", "1")
        .file("a.tgz", &data)
        .field("md5", "0")
        .finish();
    // Let the server start streaming into its temp file, then vanish.
    let half_sent = rx.send_half(body);
    drop(half_sent);
    rx.wait_no_temp_files();
    assert_eq!(rx.files(), Vec::<String>::new());
    // The version lock went with it: the same version uploads fine now.
    let file = artifact(rx.root(), "a.tgz", MB, 7);
    let out = rx.upload(&file, "plain", &["version=1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    rx.assert_only_releases(&["plain/1/a.tgz"]);
}

#[test]
fn failing_script_is_500_and_an_identical_reupload_runs_it_again() {
    let rx = Receiver::start();
    std::fs::write(rx.root().join("fail-flag"), "").unwrap();
    let file = artifact(rx.root(), "f.tgz", 100_000, 8);
    let out = rx.upload(&file, "flaky", &["version=3"]);
    assert_eq!(out.status.code(), Some(1));
    let answer = json(&stdout(&out));
    assert_eq!(answer["script"]["exit_code"], 7);
    assert!(
        answer["script"]["output_tail"]
            .as_str()
            .unwrap()
            .contains("disk on fire")
    );
    assert!(stderr(&out).contains("HTTP 500"), "{}", stderr(&out));
    // The artifact is stored; only the script failed.
    rx.assert_only_releases(&["flaky/3/f.tgz"]);

    std::fs::remove_file(rx.root().join("fail-flag")).unwrap();
    let out = rx.upload(&file, "flaky", &["version=3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&stdout(&out))["script"]["exit_code"], 0);
    assert_eq!(rx.runs("flaky"), 2);
    // Once it succeeded, an identical upload changes nothing.
    let out = rx.upload(&file, "flaky", &["version=3"]);
    assert!(out.status.success());
    assert_eq!(rx.runs("flaky"), 2);
    rx.assert_only_releases(&["flaky/3/f.tgz"]);
}

#[test]
fn script_over_its_timeout_is_killed_with_its_children() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "s.tgz", 10_000, 9);
    let started = Instant::now();
    let out = rx.upload(&file, "slow", &["version=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(15));
    let answer = json(&stdout(&out));
    assert_eq!(answer["script"]["timed_out"], true);
    assert!(answer["script"]["exit_code"].is_null());
    assert!(
        !answer["script"]["output_tail"]
            .as_str()
            .unwrap()
            .contains("never")
    );
    for pid_file in ["slow.pid", "slow-child.pid"] {
        let pid = std::fs::read_to_string(rx.root().join(pid_file)).unwrap();
        // Gone, or a zombie waiting for whoever adopted it to reap it.
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
        let state = status
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("gone");
        assert!(
            state == "gone" || state.contains("zombie"),
            "{pid_file}: {state}"
        );
    }
    rx.assert_only_releases(&["slow/1/s.tgz"]);
}

#[test]
fn reupload_same_is_200_without_a_second_run_and_different_is_409() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "r.tgz", 500_000, 10);
    let meta = ["version=5", "channel=stable"];
    let first = rx.upload(&file, "app", &meta);
    assert!(first.status.success(), "{}", stderr(&first));
    let again = rx.upload(&file, "app", &meta);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(json(&stdout(&again))["md5"], md5_hex(&file));
    assert!(
        rx.log().contains("\"POST /api/v1/releases\" 200"),
        "{}",
        rx.log()
    );
    assert_eq!(rx.runs("app"), 1);

    let other_dir = rx.root().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let different = artifact(&other_dir, "r.tgz", 500_000, 11);
    let out = rx.upload(&different, "app", &meta);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HTTP 409"), "{}", stderr(&out));
    let renamed = artifact(rx.root(), "r2.tgz", 1000, 12);
    let out = rx.upload(&renamed, "app", &meta);
    assert!(
        stderr(&out).contains("already released as r.tgz"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(rx.rel().join("app/5/r.tgz")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    rx.assert_only_releases(&["app/5/r.tgz"]);
    assert_eq!(rx.runs("app"), 1);
}

#[test]
fn concurrent_uploads_of_one_version_one_wins_the_other_409() {
    let rx = Receiver::start();
    // A holds the version mid-stream...
    let data = vec![1u8; MB];
    let body_a = Form::new()
        .field("product", "plain")
        .field("version", "9")
        .file("a.tgz", &data)
        .field("md5", &md5_of(&data))
        .finish();
    let a = rx.send_half(body_a);
    // ...so B, with another artifact for the same version, is refused.
    let file_b = artifact(rx.root(), "b.tgz", 200_000, 13);
    let out = rx.upload(&file_b, "plain", &["version=9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 409: another upload of plain 9 is in progress"),
        "{}",
        stderr(&out)
    );
    let (status, body) = a.finish();
    assert_eq!(status, 201, "{body}");
    rx.assert_only_releases(&["plain/9/a.tgz"]);

    // Two of our clients racing: exactly one 201, the other 409.
    let c1 = artifact(rx.root(), "c.tgz", 2 * MB, 14);
    let c2_dir = rx.root().join("c2");
    std::fs::create_dir(&c2_dir).unwrap();
    let c2 = artifact(&c2_dir, "c.tgz", 2 * MB, 15);
    let (o1, o2) = std::thread::scope(|s| {
        let h1 = s.spawn(|| rx.upload(&c1, "plain", &["version=10"]));
        let h2 = s.spawn(|| rx.upload(&c2, "plain", &["version=10"]));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    let mut codes = [o1.status.success(), o2.status.success()];
    codes.sort();
    assert_eq!(codes, [false, true], "{}\n{}", stderr(&o1), stderr(&o2));
    let loser = if o1.status.success() { &o2 } else { &o1 };
    assert!(stderr(loser).contains("HTTP 409"), "{}", stderr(loser));
    rx.assert_only_releases(&["plain/10/c.tgz", "plain/9/a.tgz"]);
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    let mut rx = Receiver::start();
    let data = vec![3u8; MB];
    let body = Form::new()
        .field("product", "app")
        .field("version", "7")
        .field("channel", "stable")
        .file("t.tgz", &data)
        .field("md5", &md5_of(&data))
        .finish();
    let upload = rx.send_half(body);
    rx.signal("TERM");
    // The server stops accepting...
    wait_until("the shutdown to start", || {
        rx.log().contains("shutting down")
    });
    assert!(
        TcpStream::connect(("127.0.0.1", rx.port)).is_err(),
        "still accepting"
    );
    // ...but the upload in flight completes, script and all.
    std::thread::sleep(Duration::from_millis(200));
    let (status, answer) = upload.finish();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(rx.wait_exit(Duration::from_secs(10)), Some(0));
    rx.assert_only_releases(&["app/7/t.tgz"]);
    assert_eq!(rx.runs("app"), 1);
}

#[test]
fn env_file_values_stay_inert_when_sourced() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "q.tgz", 1000, 16);
    for (version, note) in [
        ("1", "$(touch pwned-a)"),
        ("2", "'; touch pwned-b; echo '"),
        ("3", "`touch pwned-c` \"dq\" \\ $HOME"),
    ] {
        let note_arg = format!("note={note}");
        let version_arg = format!("version={version}");
        let out = rx.upload(&file, "app", &[&version_arg, &note_arg, "channel=x"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let got = std::fs::read_to_string(rx.root().join("got-note.txt")).unwrap();
        assert_eq!(got, format!("{note}\n"));
    }
    // Through curl too (a newline in a value).
    let (status, body) = rx.curl(
        Some(SECRET),
        &[
            "product=app".into(),
            "version=4".into(),
            "channel=x".into(),
            "note=line1\n$(touch pwned-d)".into(),
            format!("md5={}", md5_hex(&file)),
            "file=@q.tgz".into(),
        ],
    );
    assert_eq!(status, 201, "{body}");
    let got = std::fs::read_to_string(rx.root().join("got-note.txt")).unwrap();
    assert_eq!(got, "line1\n$(touch pwned-d)\n");
    let found: Vec<String> = rx
        .files()
        .into_iter()
        .filter(|f| f.contains("pwned"))
        .collect();
    assert!(found.is_empty(), "{found:?}");
    rx.assert_only_releases(&["app/1/q.tgz", "app/2/q.tgz", "app/3/q.tgz", "app/4/q.tgz"]);
}

#[test]
fn unreachable_receiver_is_retried_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let file = artifact(dir.path(), "u.tgz", 1000, 17);
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = upload_to(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &file,
        "app",
        &["version=1"],
        SECRET,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = stderr(&out);
    assert_eq!(err.matches("retrying in").count(), 3, "{err}");
    assert!(err.contains("failed after 4 attempts"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(!err.contains(SECRET) && !stdout(&out).contains(SECRET));
}

#[test]
fn a_503_from_a_proxy_is_retried_then_succeeds() {
    let proxy = FakeProxy::answering(vec![
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"md5\":\"x\"}\r\n",
    ]);
    let out = proxy.upload_one();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("retrying in").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_proxys_retry_after_is_honoured() {
    // The backoff is 20 ms here (the launcher's RP_HTTP_RETRY_BASE); the
    // proxy asks for a second.
    let proxy = FakeProxy::answering(vec![
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"md5\":\"x\"}",
    ]);
    let out = proxy.upload_one();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("attempt 1 of 4 failed (HTTP 503); retrying in 1s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_secret_and_bad_input_are_usage_errors() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "m.tgz", 1000, 19);
    let path = file.to_str().unwrap();
    let url = rx.url();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--meta", "version=1"], "RP_RELEASE_SECRET is not set"),
        (vec![], "no version"),
        (vec!["--meta", "version=../1"], "version \"../1\""),
        (
            vec!["--meta", "version=1", "--meta", "LD_PRELOAD=x"],
            "metadata key \"LD_PRELOAD\"",
        ),
        (
            vec!["--meta", "version=1", "--meta", "novalue"],
            "is not KEY=VALUE",
        ),
    ];
    for (i, (extra, message)) in cases.into_iter().enumerate() {
        let mut args = vec!["release", "upload", path, "--url", &url, "--product", "app"];
        args.extend(extra);
        let env: &[(&str, &str)] = if i == 0 {
            &[]
        } else {
            &[("RP_RELEASE_SECRET", SECRET)]
        };
        let out = rx.rp(&args, env);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert!(
        !rx.log().contains("\"POST "),
        "nothing was sent: {}",
        rx.log()
    );
}

#[test]
fn meta_file_ci_defaults_and_dry_run() {
    let rx = Receiver::start();
    artifact(rx.root(), "d.tgz", 1000, 20);
    std::fs::write(
        rx.root().join("release.env"),
        "version=4.0\nchannel='beta'\n",
    )
    .unwrap();
    std::fs::write(
        rx.root().join("release.yml"),
        "version: 4.1\nchannel: stable\n",
    )
    .unwrap();
    let ci = [
        ("RP_RELEASE_SECRET", SECRET),
        ("CI_COMMIT_SHA", "abc123"),
        (
            "CI_PIPELINE_URL",
            "https://gitlab.example.com/p/-/pipelines/1",
        ),
    ];
    let url = rx.url();
    let dry = rx.rp(
        &[
            "release",
            "upload",
            "d.tgz",
            "--url",
            &url,
            "--product",
            "app",
            "--meta-file",
            "release.env",
            "--meta",
            "commit=override",
            "--dry-run",
            "--json",
        ],
        &ci,
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let plan = json(&stdout(&dry));
    assert_eq!(plan["meta"]["version"], "4.0");
    assert_eq!(plan["meta"]["channel"], "beta");
    assert_eq!(plan["meta"]["commit"], "override");
    assert_eq!(
        plan["meta"]["pipeline_url"],
        "https://gitlab.example.com/p/-/pipelines/1"
    );
    assert!(
        stderr(&dry).contains("dry-run: would POST"),
        "{}",
        stderr(&dry)
    );
    assert!(!rx.log().contains("\"POST "), "dry run sent something");

    let out = rx.rp(
        &[
            "release",
            "upload",
            "d.tgz",
            "--url",
            &url,
            "--product",
            "app",
            "--meta-file",
            "release.yml",
        ],
        &ci,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("released app 4.1"),
        "{}",
        stdout(&out)
    );
    let env = std::fs::read_to_string(rx.rel().join("app/4.1/d.tgz.env")).unwrap();
    assert!(
        env.contains("commit='abc123'") && env.contains("channel='stable'"),
        "{env}"
    );
    rx.assert_only_releases(&["app/4.1/d.tgz"]);
}

#[test]
fn serve_without_release_section_serves_healthz_only_and_needs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rp-devops.yml"), "gitlab: {}\n").unwrap();
    let out = rp(dir.path(), &["serve", "--dry-run"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("GET /healthz"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("/api/v1/releases"),
        "{}",
        stderr(&out)
    );

    // With a release section, a missing secret is a configuration error.
    std::fs::write(
        dir.path().join("rp-devops.yml"),
        format!("release:\n  dir: {}/rel\n", dir.path().display()),
    )
    .unwrap();
    let out = rp(dir.path(), &["serve", "--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("RP_RELEASE_SECRET is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_example_release_script_publishes_and_refuses_hostile_channels() {
    let rx = Receiver::start();
    let file = artifact(rx.root(), "rp-5.2.0.tgz", 300_000, 21);
    let out = rx.upload(
        &file,
        "example",
        &["version=5.2.0", "channel=beta", "commit=abc"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let tail = json(&stdout(&out))["script"]["output_tail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        tail.contains("published example 5.2.0 (beta, commit abc)"),
        "{tail}"
    );
    let published = rx.root().join("published/example/beta");
    assert_eq!(
        std::fs::read(published.join("latest")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(published.join("LATEST")).unwrap(),
        format!("5.2.0 {}\n", md5_hex(&file))
    );
    // A channel that would climb out of the publish tree: the script says no.
    let out = rx.upload(&file, "example", &["version=5.2.1", "channel=../../etc"]);
    assert_eq!(out.status.code(), Some(1));
    let answer = json(&stdout(&out));
    assert_eq!(answer["script"]["exit_code"], 2);
    assert!(
        answer["script"]["output_tail"]
            .as_str()
            .unwrap()
            .contains("refusing channel")
    );
    assert!(!rx.root().join("etc").exists());
}

#[test]
fn a_crash_mid_publication_is_completed_by_the_next_identical_upload() {
    let mut rx = Receiver::unstarted("4MiB");
    // What a crash can leave: a temp file, an artifact without .env/.status.
    let version_dir = rx.rel().join("app/8");
    std::fs::create_dir_all(&version_dir).unwrap();
    let file = artifact(&version_dir, "x.tgz", 100_000, 22);
    std::fs::write(rx.rel().join(".rp-upload-crashed"), b"partial").unwrap();
    rx.spawn();
    assert!(
        rx.log().contains("left by an interrupted upload"),
        "{}",
        rx.log()
    );
    let out = rx.upload(&file, "app", &["version=8", "channel=x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&stdout(&out))["script"]["exit_code"], 0);
    assert_eq!(rx.runs("app"), 1);
    rx.assert_only_releases(&["app/8/x.tgz"]);
    // And now it is complete: nothing runs again.
    let out = rx.upload(&file, "app", &["version=8", "channel=x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rx.runs("app"), 1);
}

/// Add a product with `script` (a shell script body) to an unstarted
/// receiver's config, and `sections` (top-level YAML) after it.
fn add_product(rx: &Receiver, name: &str, script: &str, sections: &str) {
    let path = rx.root().join(format!("{name}.sh"));
    write_executable(&path, script);
    let config_path = rx.root().join("rp-devops.yml");
    let config = std::fs::read_to_string(&config_path).unwrap().replacen(
        "  products:\n",
        &format!(
            "  products:\n    {name}:\n      script: {}\n      timeout: 20s\n",
            path.display()
        ),
        1,
    );
    std::fs::write(&config_path, format!("{config}{sections}")).unwrap();
}

#[test]
fn the_release_script_gets_no_secret_proxy_or_loader_variable_and_answers_carry_no_secret() {
    let mut rx = Receiver::unstarted("4MiB");
    // A script that shows its whole environment, then a file it can read
    // that happens to hold secrets (a careless `cat` of a config).
    add_product(
        &rx,
        "envdump",
        "#!/bin/sh\nenv | sort\ncat \"$(dirname \"$0\")/leak.txt\"\n",
        "gitlab:\n  token_env: TEAM_GITLAB_TOKEN\n\
         freshdesk:\n  domain: acme.freshdesk.com\n  api_key_env: TEAM_FD_KEY\n",
    );
    let secrets: &[(&str, &str)] = &[
        ("RP_GITLAB_TOKEN", "glpat-rp-gitlab-1111"),
        ("GITLAB_TOKEN", "glpat-gitlab-2222"),
        ("CI_JOB_TOKEN", "job/token+3333"),
        ("RP_GIT_TOKEN", "git-token-4444"),
        ("TEAM_GITLAB_TOKEN", "team-token-5555"),
        ("TEAM_FD_KEY", "fd-key-6666"),
        ("RP_WEBHOOK_SECRET", "hook-secret-7777"),
        ("RP_ESCALATE_TOKEN", "esc-token-8888"),
    ];
    let mut env: Vec<(&str, &str)> = secrets.to_vec();
    env.extend_from_slice(&[
        // The job token again, inside a URL (as GitLab Runner sets it).
        (
            "CI_REPOSITORY_URL",
            "https://gitlab-ci-token:job%2Ftoken%2B3333@gitlab.example.com/g/p.git",
        ),
        ("http_proxy", "http://127.0.0.1:9"),
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("ALL_PROXY", "socks5://127.0.0.1:9"),
        ("no_proxy", "example.com"),
        ("LD_LIBRARY_PATH", "/nonexistent-rp-devops-test"),
        ("KEEP_ME", "yes"),
    ]);
    let mut leak: Vec<String> = secrets.iter().map(|(_, v)| (*v).to_owned()).collect();
    leak.push(SECRET.to_owned());
    leak.push("job%2Ftoken%2B3333".to_owned());
    std::fs::write(rx.root().join("leak.txt"), leak.join("\n")).unwrap();
    rx.spawn_with(&env);

    let file = artifact(rx.root(), "e.tgz", 1000, 30);
    let (status, body) = rx.curl(
        Some(SECRET),
        &[
            "product=envdump".into(),
            "version=1".into(),
            format!("md5={}", md5_hex(&file)),
            "file=@e.tgz".into(),
        ],
    );
    assert_eq!(status, 201, "{body}");
    let answer = json(&body);
    let tail = answer["script"]["output_tail"].as_str().unwrap();
    assert!(tail.contains("KEEP_ME=yes"), "{tail}");
    assert!(tail.contains("RELEASE_PRODUCT=envdump"), "{tail}");
    assert!(tail.contains("[redacted]"), "{tail}");
    let status_file = std::fs::read_to_string(rx.rel().join("envdump/1/e.tgz.status")).unwrap();
    for text in [tail, body.as_str(), status_file.as_str(), rx.log().as_str()] {
        for value in &leak {
            assert!(!text.contains(value.as_str()), "{value} in {text}");
        }
        for name in [
            "RP_GITLAB_TOKEN",
            "GITLAB_TOKEN=",
            "CI_JOB_TOKEN",
            "RP_GIT_TOKEN",
            "TEAM_GITLAB_TOKEN",
            "TEAM_FD_KEY",
            "RP_WEBHOOK_SECRET",
            "RP_ESCALATE_TOKEN",
            "RP_RELEASE_SECRET",
            "CI_REPOSITORY_URL",
            "proxy=",
            "PROXY=",
            "LD_LIBRARY_PATH",
        ] {
            assert!(!text.contains(name), "{name} in {text}");
        }
    }

    // Proxy and loader names are refused as metadata, by the receiver and
    // by our client before it sends anything.
    for key in ["http_proxy", "https_proxy", "no_proxy", "ld_preload"] {
        let (status, body) = rx.curl(
            Some(SECRET),
            &[
                "product=envdump".into(),
                "version=2".into(),
                format!("{key}=http://evil.example.com:3128"),
                format!("md5={}", md5_hex(&file)),
                "file=@e.tgz".into(),
            ],
        );
        assert_eq!(status, 422, "{key}: {body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains(key),
            "{body}"
        );
        let out = rx.upload(&file, "envdump", &["version=2", &format!("{key}=x")]);
        assert_eq!(out.status.code(), Some(2), "{key}: {}", stderr(&out));
    }
    rx.assert_only_releases(&["envdump/1/e.tgz"]);
}

#[test]
fn files_the_script_writes_next_to_the_artifact_never_make_a_reupload_409() {
    let mut rx = Receiver::unstarted("4MiB");
    // Like a real publishing script: checksums and a log beside the
    // artifact, some sorting before its name.
    add_product(
        &rx,
        "sums",
        "#!/bin/sh\nd=$(dirname \"$1\")\nmd5sum \"$1\" > \"$d/MD5SUMS\"\n\
         for n in 0 1 2 3 4 5 6 7 8 9; do echo x > \"$d/$n-extra.txt\"; done\necho ok > \"$d/zz.log\"\n",
        "",
    );
    rx.spawn();
    let file = artifact(rx.root(), "s.tgz", 200_000, 31);
    let first = rx.upload(&file, "sums", &["version=3"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(rx.rel().join("sums/3/MD5SUMS").is_file());
    for _ in 0..3 {
        let again = rx.upload(&file, "sums", &["version=3"]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert_eq!(json(&stdout(&again))["md5"], md5_hex(&file));
    }
    // Another file name is still refused, naming the published artifact.
    let renamed = artifact(rx.root(), "t.tgz", 1000, 32);
    let out = rx.upload(&renamed, "sums", &["version=3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already released as s.tgz"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn io_error_details_go_to_the_log_not_to_the_client() {
    let rx = Receiver::start();
    // Something in the way where the version directory must go.
    std::fs::create_dir_all(rx.rel().join("plain")).unwrap();
    std::fs::write(rx.rel().join("plain/9"), "not a directory").unwrap();
    let file = artifact(rx.root(), "p.tgz", 1000, 33);
    let (status, body) = rx.curl(
        Some(SECRET),
        &[
            "product=plain".into(),
            "version=9".into(),
            format!("md5={}", md5_hex(&file)),
            "file=@p.tgz".into(),
        ],
    );
    assert_eq!(status, 500, "{body}");
    let error = json(&body)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("server's log"), "{error}");
    assert!(
        !error.contains("os error") && !error.contains("directory"),
        "{error}"
    );
    let log = rx.log();
    assert!(log.contains("os error"), "{log}");
    rx.wait_no_temp_files();
}

// ---- the status route ----

#[test]
fn the_status_route_reports_each_state_of_a_version() {
    let rx = Receiver::start();
    let state = |product: &str, version: &str| {
        let (status, body) = rx.status_of(SECRET, product, version);
        (status, json(&body))
    };
    // No trace yet; a wrong secret; an unknown product; a bad name.
    let (status, body) = state("plain", "9");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "no trace of plain 9 on this receiver");
    assert_eq!(rx.status_of("wrong", "plain", "9").0, 401);
    let (status, body) = state("nope", "9");
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown product")
    );
    assert_eq!(state("plain", "a..b").0, 422);
    // `?bytes=N` over max_size: the upload's own 413.
    let (status, body) = http(
        rx.port,
        &format!(
            "GET /api/v1/releases/plain/9?bytes={} HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {SECRET}\r\nConnection: close\r\n\r\n",
            5 * MB
        ),
        b"",
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("release.max_size")
    );

    // In progress while it arrives, published once done.
    let data = vec![4u8; MB];
    let md5 = md5_of(&data);
    let upload = rx.send_half(
        Form::new()
            .field("product", "plain")
            .field("version", "9")
            .file("p.tgz", &data)
            .field("md5", &md5)
            .finish(),
    );
    let (status, body) = state("plain", "9");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "in-progress");
    assert!(body["md5"].is_null() && body["file"].is_null());
    assert_eq!(upload.finish().0, 201);
    let (status, body) = state("plain", "9");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({
            "product": "plain", "version": "9", "file": "p.tgz",
            "md5": md5, "bytes": MB, "state": "published"
        })
    );

    // A failed script.
    std::fs::write(rx.root().join("fail-flag"), "").unwrap();
    let file = artifact(rx.root(), "f.tgz", 1000, 60);
    let out = rx.upload(&file, "flaky", &["version=2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(state("flaky", "2").1["state"], "script-failed");
    assert!(!rx.log().contains(SECRET));
}

// ---- a lost answer is settled, not re-sent blindly ----

#[test]
fn an_upload_whose_answer_is_lost_is_confirmed_not_sent_again() {
    let rx = Receiver::start();
    let gateway = Gateway::start(rx.port, Lose::Answer, 1);
    let file = artifact(rx.root(), "g.tgz", 2 * MB, 61);
    let out = upload_to(
        rx.root(),
        &gateway.url(),
        &file,
        "app",
        &["version=1", "channel=x"],
        SECRET,
        &["--json"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "the artifact was sent, but its answer was lost (HTTP 504 from test-gateway: \
             504 Gateway Time-out); asking the receiver what became of it"
        ),
        "{err}"
    );
    let answer = json(&stdout(&out));
    assert_eq!(answer["state"], "published");
    assert_eq!(answer["md5"], md5_hex(&file));
    assert_eq!(rx.log().matches("\"POST /api/v1/releases\"").count(), 1);
    assert_eq!(rx.runs("app"), 1);
    rx.assert_only_releases(&["app/1/g.tgz"]);
}

#[test]
fn an_upload_the_receiver_never_saw_is_sent_again() {
    let rx = Receiver::start();
    let gateway = Gateway::start(rx.port, Lose::Upload, 1);
    let file = artifact(rx.root(), "h.tgz", MB, 62);
    let out = upload_to(
        rx.root(),
        &gateway.url(),
        &file,
        "plain",
        &["version=1"],
        SECRET,
        &[],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the receiver has no trace of the upload; it will be sent again"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("released plain 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(rx.log().matches("\"POST /api/v1/releases\"").count(), 1);
    rx.assert_only_releases(&["plain/1/h.tgz"]);
}

#[test]
fn a_lost_answer_is_settled_as_a_failed_script_or_a_conflict() {
    let rx = Receiver::start();
    // The script failed while the gateway lost the answer: exit 1, saying so.
    std::fs::write(rx.root().join("fail-flag"), "").unwrap();
    let gateway = Gateway::start(rx.port, Lose::Answer, 1);
    let file = artifact(rx.root(), "k.tgz", 1000, 63);
    let out = upload_to(
        rx.root(),
        &gateway.url(),
        &file,
        "flaky",
        &["version=1"],
        SECRET,
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HTTP 500: flaky 1 was stored, but its release script failed"),
        "{err}"
    );
    assert!(err.contains("the upload's own answer was lost"), "{err}");
    assert_eq!(rx.runs("flaky"), 1);

    // Other bytes are released as that version: a conflict, not a re-send.
    let first = artifact(rx.root(), "c.tgz", 1000, 64);
    assert!(rx.upload(&first, "plain", &["version=3"]).status.success());
    let other_dir = rx.root().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let second = artifact(&other_dir, "c.tgz", 1000, 65);
    let gateway = Gateway::start(rx.port, Lose::Upload, 1);
    let out = upload_to(
        rx.root(),
        &gateway.url(),
        &second,
        "plain",
        &["version=3"],
        SECRET,
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "HTTP 409: plain 3 is already released with another artifact (md5 {})",
            md5_hex(&first)
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read(rx.rel().join("plain/3/c.tgz")).unwrap(),
        std::fs::read(&first).unwrap()
    );
}

// ---- bounded forms ----

#[test]
fn too_many_fields_or_an_oversized_part_header_are_refused() {
    let rx = Receiver::start();
    // More metadata fields than release.max_fields (64).
    let mut form = Form::new().field("product", "plain").field("version", "1");
    for i in 0..100 {
        form = form.field(&format!("f{i}"), "x");
    }
    let body = form.file("a.tgz", b"data").finish();
    let (status, answer) = http(rx.port, &Form::new().head(SECRET, body.len()), &body);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        json(&answer)["error"],
        "more than 64 metadata fields (this server's release.max_fields)"
    );

    // A part header of 100 KiB: 431, before the parser buffers it.
    let boundary = Form::new().boundary;
    let part = |pad: usize, data: &[u8]| {
        let mut part = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"h.tgz\"\r\n\
             X-Pad: {}\r\n\r\n",
            "p".repeat(pad)
        )
        .into_bytes();
        part.extend_from_slice(data);
        part.extend_from_slice(b"\r\n");
        part
    };
    let head_fields = Form::new().field("product", "plain").field("version", "2");
    let mut body = head_fields.parts.clone();
    body.extend(part(100 * 1024, b"data"));
    body.extend(format!("--{boundary}--\r\n").into_bytes());
    let (status, answer) = http(rx.port, &Form::new().head(SECRET, body.len()), &body);
    assert_eq!(status, 431, "{answer}");
    assert!(
        json(&answer)["error"]
            .as_str()
            .unwrap()
            .contains("16384 bytes")
    );

    // A 12 KiB header before 3 MiB of data is fine: the data that follows a
    // header in the same read does not count against it.
    let data = vec![5u8; 3 * MB];
    let mut body = head_fields.parts.clone();
    body.extend(part(12 * 1024, &data));
    body.extend(Form::new().field("md5", &md5_of(&data)).finish());
    let (status, answer) = http(rx.port, &Form::new().head(SECRET, body.len()), &body);
    assert_eq!(status, 201, "{answer}");
    rx.assert_only_releases(&["plain/2/h.tgz"]);
}
