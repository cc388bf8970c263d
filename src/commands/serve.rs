//! `rp-devops serve`: the long-running HTTP service (SPEC §10). This file is
//! the command line and the runtime; the server itself is `crate::serve`.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;

use crate::error::{ExitStatus, UsageError};
use crate::output::Printer;
use crate::serve::{Routes, ShutdownSignals, serve};
use crate::settings::Settings;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Serve the release receiver and the other HTTP endpoints enabled in the
/// config file; GET /healthz always.
///
/// Stops on SIGTERM or SIGINT after the requests in flight (uploads and the
/// release scripts they started) have finished; a second signal stops at
/// once. With --dry-run, checks the configuration and exits.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    RP_RELEASE_SECRET=... rp-devops serve --config /etc/rp-devops/rp-devops.yml\n  \
    rp-devops serve --listen 0.0.0.0:8080 --dry-run")]
pub struct ServeArgs {
    /// Address to listen on [env: RP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn run(args: &ServeArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let listen = args
        .listen
        .as_deref()
        .or_else(|| settings.env.get("RP_LISTEN"))
        .unwrap_or(DEFAULT_LISTEN)
        .trim()
        .to_owned();
    let addr: SocketAddr = listen.parse().map_err(|_| {
        UsageError::new(format!(
            "--listen {listen:?} is not an address like 127.0.0.1:8080 or [::]:8080"
        ))
    })?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rp-serve")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // The receiver's set-up (and its config checks) needs the runtime
        // for its task tracker, so it happens in here.
        let routes = Routes::from_settings(settings, &printer)?;
        if settings.dry_run {
            printer.would(
                "listen on",
                &addr.to_string(),
                format!("routes: {}", routes.enabled.join("; ")),
            );
            return Ok(());
        }
        let signals = ShutdownSignals::new().context("installing signal handlers")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr().unwrap_or(addr);
        printer.info(format!("listening on http://{local}"));
        for route in &routes.enabled {
            printer.info(format!("  {route}"));
        }
        serve(listener, routes, printer.clone(), signals).await
    })?;
    Ok(ExitStatus::Success)
}
