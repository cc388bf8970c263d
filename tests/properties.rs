//! Properties over the functions the fuzz targets (`fuzz/`) hammer, run in
//! `cargo test`: the race-log parser, the config loader, the webhook's
//! payload handling and signature check, the issue-reference finder, the
//! HTML→Markdown path and the release receiver's form (in-process). No
//! panics, bounded output, and each parser's own invariants. Crashes the
//! fuzzers found are kept as regression cases at the end.

use std::path::Path;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use rp_devops::config::Config;
use rp_devops::escalation::markdown::{MAX_MARKDOWN_CHARS, to_markdown};
use rp_devops::races::RaceReport;
use rp_devops::references::{IssueReference, MAX_REFERENCES, ReferenceFinder};
use rp_devops::serve::webhook::{decode_signing_key, interpret_payload, verify_signature};
use sha2::Sha256;

fn scan(data: &[u8]) -> Vec<RaceReport> {
    let mut reports = Vec::new();
    let stats = rp_devops::races::scan(data, &mut |_| {}, &mut |r| reports.push(r))
        .expect("reading memory cannot fail");
    assert_eq!(stats.bytes, data.len() as u64);
    assert_eq!(stats.reports as usize, reports.len());
    reports
}

// ---------------------------------------------------------------------------
// The race-log parser

/// A Go function name as the race detector prints it.
fn function() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,8}(\\.[a-z]{1,6}){0,2}",
        prop::option::of("[A-Z][a-z]{0,6}"),
        "[A-Z][a-zA-Z]{0,10}",
    )
        .prop_map(|(package, receiver, name)| match receiver {
            Some(r) => format!("{package}.(*{r}).{name}()"),
            None => format!("{package}.{name}()"),
        })
}

/// One Go race report; the two accesses' top frames are `a` and `b`.
fn go_report(a: &str, b: &str, address: u64, goroutines: (u32, u32)) -> Vec<String> {
    vec![
        "==================".into(),
        "WARNING: DATA RACE".into(),
        format!("Write at 0x{address:012x} by goroutine {}:", goroutines.0),
        format!("  {a}"),
        "      /builds/x/a.go:23 +0xf2".into(),
        "  main.main.func1()".into(),
        "      /builds/x/main.go:18 +0x18e".into(),
        String::new(),
        format!(
            "Previous read at 0x{address:012x} by goroutine {}:",
            goroutines.1
        ),
        format!("  {b}"),
        "      /builds/x/b.go:36 +0x44".into(),
        String::new(),
        format!("Goroutine {} (running) created at:", goroutines.0),
        "  main.main()".into(),
        "      /builds/x/main.go:16 +0x124".into(),
        "==================".into(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_race_parser_never_panics_and_stays_bounded(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        for report in scan(&data) {
            prop_assert!(report.title().chars().count() <= 255);
            prop_assert!(report.text.len() <= data.len() + 16);
            let _ = report.fingerprint();
        }
    }

    #[test]
    fn noise_around_reports_never_panics(
        noise in prop::collection::vec(
            prop_oneof![
                Just("WARNING: DATA RACE".to_owned()),
                Just("==================".to_owned()),
                Just("WARNING: ThreadSanitizer: data race (pid=1)".to_owned()),
                Just("SUMMARY: ThreadSanitizer: data race".to_owned()),
                Just("Previous write at 0x00c000 by goroutine 7:".to_owned()),
                Just("  #0 worker() a.c:1:2 (a.out+0x1)".to_owned()),
                Just("{\"Action\":\"output\",\"Output\":\"WARNING: DATA RACE\\n\"}".to_owned()),
                ".{0,80}",
            ],
            0..60,
        ),
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let text = noise.join(eol);
        for report in scan(text.as_bytes()) {
            prop_assert!(report.title().chars().count() <= 255);
        }
    }

    #[test]
    fn a_race_is_one_fingerprint_whatever_the_prefix_line_ends_addresses_and_order(
        a in function(),
        b in function(),
        address in any::<u64>(),
        goroutines in (1u32..100_000, 1u32..100_000),
        prefix in prop_oneof![Just(String::new()), "[a-z]{3,8}-[0-9]{2} app\\[[0-9]{1,5}\\]: ", "2024-0[1-9]-1[0-9]T10:00:00Z "],
        crlf in any::<bool>(),
        noise in "[a-z ]{0,40}",
    ) {
        prop_assume!(!a.starts_with("runtime.") && !b.starts_with("runtime."));
        prop_assume!(!a.starts_with("sync.") && !b.starts_with("sync."));
        prop_assume!(!a.starts_with("internal.") && !b.starts_with("internal."));
        let plain = go_report(&a, &b, 0xc0000a4028, (10, 11)).join("\n");
        let reference = scan(plain.as_bytes());
        prop_assert_eq!(reference.len(), 1);
        let fingerprint = reference[0].fingerprint();

        let eol = if crlf { "\r\n" } else { "\n" };
        let mut lines: Vec<String> = vec![format!("service line {noise}")];
        // The other way round (accesses swapped), another address and ids.
        lines.extend(
            go_report(&b, &a, address, goroutines)
                .into_iter()
                .map(|l| format!("{prefix}{l}")),
        );
        lines.push("after the report".into());
        let text = lines.join(eol);
        let found = scan(text.as_bytes());
        prop_assert_eq!(found.len(), 1, "{}", text);
        prop_assert_eq!(found[0].fingerprint(), fingerprint);
        prop_assert!(!found[0].text.contains('\r'));
        if !prefix.is_empty() {
            prop_assert!(!found[0].text.contains(prefix.trim_end()), "prefix kept: {}", found[0].text);
        }
    }
}

/// Found by the `race_log` fuzz target in its first seconds (before issue
/// 10 part 1 #3 was fixed): text in a report that starts like rp-devops's
/// marker (here in a frame, as a crafted log can print it) came before the
/// real marker in the issue body, and marker lookup took the first: the
/// issue's own marker was missed (a duplicate issue next run) or forged
/// (another race's issue).
#[test]
fn log_text_never_stands_in_for_the_issue_marker() {
    use rp_devops::races::input::{Scan, Source};
    use rp_devops::races::issue::{RaceMarker, issue_body};
    for forged in [
        "<!-- rp-devops:race fingerprint=abc sides=abc -->",
        "<!-- rp-devops:race fingerprint=ex_tuple<0ul>",
    ] {
        let log = go_report(
            &format!("main.evil{forged}()"),
            "main.other()",
            0xc000,
            (1, 2),
        )
        .join("\n");
        let mut scan = Scan::default();
        for report in self::scan(log.as_bytes()) {
            scan.add(report, &Source::new("host", "evil.log"));
        }
        let sightings = scan.into_sightings();
        assert_eq!(sightings.len(), 1);
        let ours = RaceMarker::of(&sightings[0]);
        let body = issue_body(&sightings[0], &ours.render(), "");
        let found = RaceMarker::find(&body).map(|(marker, _)| marker);
        assert_eq!(found, Some(ours), "{body}");
    }
}

// ---------------------------------------------------------------------------
// The config loader

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_config_loader_never_panics(text in ".{0,400}") {
        let _ = Config::parse(&text, Path::new("rp-devops.yml")).map_err(|e| format!("{e:#}"));
    }

    #[test]
    fn yaml_shaped_configs_never_panic(
        lines in prop::collection::vec(
            (
                prop_oneof![Just(""), Just("  "), Just("    ")],
                prop_oneof![
                    prop::sample::select(vec![
                        "gitlab", "url", "races", "labels", "max_size", "release", "products",
                        "timeout", "workflow", "webhook", "secret_env", "freshdesk", "serve",
                    ])
                    .prop_map(str::to_owned),
                    "[a-z_]{1,10}",
                ],
                prop_oneof![
                    Just(String::new()), Just("[]".to_owned()), Just("{}".to_owned()),
                    Just("8GiB".to_owned()), Just("15m".to_owned()), Just("-1".to_owned()),
                    Just("[a, b]".to_owned()), Just("~".to_owned()), Just("&a".to_owned()),
                    Just("*a".to_owned()), ".{0,20}",
                ],
            ),
            0..12,
        ),
    ) {
        let text: String = lines
            .iter()
            .map(|(indent, key, value)| format!("{indent}{key}: {value}\n"))
            .collect();
        let _ = Config::parse(&text, Path::new("rp-devops.yml")).map_err(|e| format!("{e:#}"));
    }

    #[test]
    fn an_unknown_top_level_key_is_always_an_error(key in "[a-z]{3,12}") {
        let known = [
            "gitlab", "versions", "workflow", "races", "tag_library", "freshdesk", "release",
            "serve", "webhook", "escalation_endpoint",
        ];
        prop_assume!(!known.contains(&key.as_str()));
        let err = Config::parse(&format!("{key}: 1\n"), Path::new("x.yml"))
            .expect_err("unknown keys are errors");
        let message = format!("{err:#}");
        prop_assert!(message.contains(&key), "{}", message);
    }
}

// ---------------------------------------------------------------------------
// The webhook

const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn sign(key: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn signature_headers(id: &str, ts: u64, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(id).expect("id"));
    headers.insert("webhook-timestamp", HeaderValue::from(ts));
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(signature).expect("signature"),
    );
    headers
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("merge_request".to_owned()),
            Just("open".to_owned()),
            Just("update".to_owned()),
            Just("merge".to_owned()),
            ".{0,10}"
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop::collection::btree_map(
            prop_oneof![
                Just("object_kind".to_owned()),
                Just("project".to_owned()),
                Just("id".to_owned()),
                Just("object_attributes".to_owned()),
                Just("iid".to_owned()),
                Just("action".to_owned()),
                Just("target_project_id".to_owned()),
                Just("changes".to_owned()),
                Just("draft".to_owned()),
                Just("previous".to_owned()),
                Just("current".to_owned()),
                Just("title".to_owned()),
            ],
            inner,
            0..6,
        )
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn payloads_never_panic_and_only_handled_actions_run(value in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = interpret_payload(&bytes);
        let body = serde_json::to_vec(&value).expect("JSON");
        if let Ok(Some(event)) = interpret_payload(&body) {
            prop_assert!(["open", "reopen", "update", "merge"].contains(&event.action.as_str()));
            prop_assert!(event.check_versions || event.transition);
            prop_assert_eq!(event.check_versions, event.action != "merge");
        }
    }

    #[test]
    fn a_signature_holds_for_its_body_only(
        body in prop::collection::vec(any::<u8>(), 0..300),
        id in "msg_[A-Za-z0-9]{1,20}",
        skew in 0u64..300,
        flip in any::<prop::sample::Index>(),
    ) {
        let key = decode_signing_key(SIGNING).expect("key");
        let now = 1_700_000_000;
        let ts = now - skew;
        let good = sign(&key, &id, ts, &body);
        prop_assert_eq!(verify_signature(&key, &signature_headers(&id, ts, &good), &body, now), Ok(()));
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip.index(changed.len());
            changed[i] ^= 0x01;
            prop_assert!(verify_signature(&key, &signature_headers(&id, ts, &good), &changed, now).is_err());
        }
        // Stale or from the future, even correctly signed.
        let old = now - 301 - skew;
        let stale = sign(&key, &id, old, &body);
        prop_assert!(verify_signature(&key, &signature_headers(&id, old, &stale), &body, now).is_err());
    }

    #[test]
    fn signature_headers_of_any_shape_never_panic(
        id in ".{0,30}", ts in ".{0,20}", signature in ".{0,120}", body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let key = decode_signing_key(SIGNING).expect("key");
        let mut headers = HeaderMap::new();
        for (name, value) in [("webhook-id", &id), ("webhook-timestamp", &ts), ("webhook-signature", &signature)] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
        let _ = verify_signature(&key, &headers, &body, 1_700_000_000);
        let _ = decode_signing_key(&signature);
    }
}

// ---------------------------------------------------------------------------
// The issue-reference finder

static FINDER: LazyLock<ReferenceFinder> =
    LazyLock::new(|| ReferenceFinder::new("https://gitlab.example.com"));

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn references_are_bounded_distinct_and_well_formed(text in ".{0,600}", more in "([a-z]{0,3}[#/!` ]{0,2}[0-9]{0,3}){0,80}") {
        for input in [&text, &more] {
            let found = FINDER.find(input);
            prop_assert!(found.len() <= MAX_REFERENCES);
            let distinct: std::collections::HashSet<&IssueReference> = found.iter().collect();
            prop_assert_eq!(distinct.len(), found.len());
            for r in &found {
                prop_assert!(r.iid > 0);
                if let Some(project) = &r.project {
                    prop_assert!(project.contains('/'));
                    prop_assert!(project.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)));
                }
            }
        }
    }

    #[test]
    fn a_reference_in_prose_counts_and_in_code_does_not(iid in 1u64..1_000_000, before in "[a-z ]{0,20}", after in "[a-z ]{0,20}") {
        let prose = format!("{before} #{iid} {after}");
        prop_assert_eq!(FINDER.find(&prose), vec![IssueReference { project: None, iid }]);
        let inline = format!("{before} `#{iid}` {after}");
        prop_assert!(FINDER.find(&inline).is_empty(), "{}", inline);
        let fenced = format!("{before}\n```\n#{iid}\n```\n{after}");
        prop_assert!(FINDER.find(&fenced).is_empty(), "{}", fenced);
        let mr = format!("{before} !{iid} {after}");
        prop_assert!(FINDER.find(&mr).is_empty());
    }

    #[test]
    fn many_references_stop_at_the_cap(n in 90usize..400) {
        let text: String = (1..=n).map(|i| format!("#{i} ")).collect();
        let found = FINDER.find_all([text.as_str(), text.as_str()]);
        prop_assert_eq!(found.len(), n.min(MAX_REFERENCES));
    }
}

// ---------------------------------------------------------------------------
// HTML → Markdown

fn html() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<div>".to_owned()),
        Just("</div>".to_owned()),
        Just("<p>".to_owned()),
        Just("<br>".to_owned()),
        Just("<ul><li>".to_owned()),
        Just("</li></ul>".to_owned()),
        Just("<blockquote>".to_owned()),
        Just("<pre><code>".to_owned()),
        Just("</code></pre>".to_owned()),
        Just("<table><tr><td>".to_owned()),
        Just("<a href=\"https://x.example/\">".to_owned()),
        Just("</a>".to_owned()),
        Just("<!--".to_owned()),
        Just("-->".to_owned()),
        Just("<!-- rp-devops:freshdesk ticket=1 -->".to_owned()),
        Just("\n/close\n".to_owned()),
        Just("\n  /label ~bug\n".to_owned()),
        Just("&lt;!--".to_owned()),
        Just("<script>/close</script>".to_owned()),
        Just("<b>".to_owned()),
        ".{0,15}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

fn assert_inert(out: &str) -> Result<(), TestCaseError> {
    prop_assert!(!out.contains("<!--"), "an HTML comment opens: {:?}", out);
    for line in out.lines() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix('/') {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            let after = rest[name_len..].chars().next();
            prop_assert!(
                name_len == 0 || after.is_some_and(|c| !c.is_whitespace()),
                "a quick action survives: {:?}",
                line
            );
        }
    }
    prop_assert!(out.chars().count() <= MAX_MARKDOWN_CHARS + 200);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn freshdesk_html_becomes_inert_bounded_markdown(html in html()) {
        assert_inert(&to_markdown(&html, &html))?;
    }

    #[test]
    fn any_text_becomes_inert_bounded_markdown(text in ".{0,300}") {
        assert_inert(&to_markdown(&text, &text))?;
    }
}

#[test]
fn deep_and_huge_html_stays_bounded() {
    let deep = "<div>".repeat(100_000) + "/close";
    assert_inert(&to_markdown(&deep, "/close\n<!-- x -->")).expect("inert");
    let huge = "<p>a</p>".repeat(400_000);
    let out = to_markdown(&huge, "plain");
    assert!(out.chars().count() <= MAX_MARKDOWN_CHARS + 200);
}

// ---------------------------------------------------------------------------
// The release receiver's form, in-process

mod receiver {
    use std::sync::LazyLock;

    use axum::body::Body;
    use axum::http::{Request, header};
    use proptest::prelude::*;
    use rp_devops::output::Printer;
    use rp_devops::serve::Routes;
    use rp_devops::settings::{Env, GlobalOptions, Settings};
    use tower::ServiceExt;

    const SECRET: &str = "prop-release-secret";
    const BOUNDARY: &str = "XpropX";

    pub struct Receiver {
        pub dir: tempfile::TempDir,
        runtime: tokio::runtime::Runtime,
        router: axum::Router,
    }

    pub static RECEIVER: LazyLock<Receiver> = LazyLock::new(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let releases = dir.path().join("releases");
        std::fs::create_dir(&releases).expect("release dir");
        let config_path = dir.path().join("rp-devops.yml");
        std::fs::write(
            &config_path,
            format!(
                "release:\n  dir: {}\n  max_size: 64KiB\n  products:\n    app:\n      required: [channel]\n    tool: {{}}\n",
                releases.display()
            ),
        )
        .expect("config");
        let options = GlobalOptions {
            config: Some(config_path),
            quiet: 1,
            ..GlobalOptions::default()
        };
        let settings = Settings::resolve(
            &options,
            Env::from_pairs([("RP_RELEASE_SECRET", SECRET)]),
            dir.path(),
        )
        .expect("settings");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let router = {
            let _guard = runtime.enter();
            Routes::from_settings(&settings, &Printer::new(&settings))
                .expect("routes")
                .router
        };
        Receiver {
            dir,
            runtime,
            router,
        }
    });

    /// POST the body as a multipart form; the status.
    pub fn post(body: Vec<u8>) -> u16 {
        let r = &*RECEIVER;
        let request = Request::post("/api/v1/releases")
            .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .expect("request");
        r.runtime
            .block_on(r.router.clone().oneshot(request))
            .expect("infallible")
            .status()
            .as_u16()
    }

    pub fn part(name: &str, file_name: Option<&str>, value: &[u8]) -> Vec<u8> {
        let mut out =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").into_bytes();
        if let Some(f) = file_name {
            out.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }

    pub fn end() -> Vec<u8> {
        format!("--{BOUNDARY}--\r\n").into_bytes()
    }

    fn field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(part("product", None, b"app")),
            Just(part("product", None, b"tool")),
            Just(part("product", None, b"../etc")),
            Just(part("version", None, b"1.0")),
            Just(part("version", None, b"..")),
            Just(part("channel", None, b"stable")),
            Just(part("md5", None, b"0123456789abcdef0123456789abcdef")),
            Just(part("md5", None, b"zz")),
            Just(part("file", Some("a.tgz"), b"data")),
            Just(part("file", Some("../a.tgz"), b"data")),
            Just(part("file", None, b"data")),
            Just(part("http_proxy", None, b"http://evil")),
            Just(part("x", None, &[0, 159, 146, 150])),
            Just(part("big", None, &vec![b'x'; 70_000])),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn any_form_gets_a_client_error_or_success_never_a_5xx(fields in prop::collection::vec(field(), 0..8), close in any::<bool>()) {
            let mut body: Vec<u8> = fields.concat();
            if close {
                body.extend_from_slice(&end());
            }
            let status = post(body);
            prop_assert!((200..500).contains(&status), "status {}", status);
        }
    }
}

#[test]
fn the_receiver_leaves_no_temporary_file_after_refusing() {
    use receiver::{end, part, post};
    let mut body = part("product", None, b"app");
    body.extend(part("version", None, b"7.0"));
    body.extend(part("file", Some("a.tgz"), &vec![b'z'; 100_000]));
    body.extend(end());
    assert_eq!(post(body), 413);
    let mut stack = vec![receiver::RECEIVER.dir.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            assert!(
                !entry.file_name().to_string_lossy().starts_with(".rp-tmp"),
                "{} left behind",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}
