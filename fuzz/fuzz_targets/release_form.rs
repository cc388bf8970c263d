//! The release receiver (SPEC §9) in-process: the real route, behind the
//! right bearer secret, fed an arbitrary multipart body. No panic, and no
//! 5xx (no script is configured, so a server error is a bug).
#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{Request, header};
use libfuzzer_sys::fuzz_target;
use rp_devops::output::Printer;
use rp_devops::serve::Routes;
use rp_devops::settings::{Env, GlobalOptions, Settings};
use tower::ServiceExt;

const SECRET: &str = "fuzz-release-secret";
const BOUNDARY: &str = "XfuzzX";

struct Receiver {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

static RECEIVER: LazyLock<Receiver> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let releases = dir.path().join("releases");
    std::fs::create_dir(&releases).expect("release dir");
    let config = format!(
        "release:\n  dir: {}\n  secret_env: RP_RELEASE_SECRET\n  max_size: 64KiB\n  \
         products:\n    app:\n      required: [channel]\n    tool: {{}}\n",
        releases.display()
    );
    let config_path = dir.path().join("rp-devops.yml");
    std::fs::write(&config_path, config).expect("config");
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
        _dir: dir,
        runtime,
        router,
    }
});

fuzz_target!(|data: &[u8]| {
    let receiver = &*RECEIVER;
    let request = Request::post("/api/v1/releases")
        .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(data.to_vec()))
        .expect("request");
    let response = receiver
        .runtime
        .block_on(receiver.router.clone().oneshot(request))
        .expect("infallible");
    assert!(
        !response.status().is_server_error(),
        "{} for {:?}",
        response.status(),
        String::from_utf8_lossy(data)
    );
});
