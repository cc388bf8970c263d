//! `rp-devops serve`: the long-running HTTP service (SPEC §10). This file is
//! the command line and the runtime; the server itself is `crate::serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::error::{ExitStatus, UsageError};
use crate::output::Printer;
use crate::serve::connections::{affordable_connections, raise_open_files_limit};
use crate::serve::tls::{ServerTls, TlsFiles};
use crate::serve::{Routes, ServeOptions, ShutdownSignals, serve};
use crate::settings::Settings;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Serve the release receiver and the other HTTP endpoints enabled in the
/// config file; GET /healthz always.
///
/// Stops on SIGTERM or SIGINT after the requests in flight (uploads and the
/// release scripts they started) have finished; a second signal stops at
/// once. With --tls-cert and --tls-key (or serve.tls_cert and
/// serve.tls_key) it speaks HTTPS, and SIGHUP reloads the certificate. With
/// --dry-run, checks the configuration and exits.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    RP_RELEASE_SECRET=... rp-devops serve --config /etc/rp-devops/rp-devops.yml\n  \
    rp-devops serve --listen 0.0.0.0:8443 --tls-cert /etc/rp-devops/tls.pem --tls-key /etc/rp-devops/tls.key\n  \
    rp-devops serve --listen 0.0.0.0:8080 --dry-run")]
pub struct ServeArgs {
    /// Address to listen on [env: RP_LISTEN] [config: serve.listen] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Serve HTTPS with this PEM certificate chain (leaf first) [config: serve.tls_cert]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's PEM private key [config: serve.tls_key]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

pub fn run(args: &ServeArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let config = &settings.config.serve;
    let listen = args
        .listen
        .as_deref()
        .or_else(|| settings.env.get("RP_LISTEN"))
        .or(config.listen.as_deref())
        .unwrap_or(DEFAULT_LISTEN)
        .trim()
        .to_owned();
    let addr: SocketAddr = listen.parse().map_err(|_| {
        UsageError::new(format!(
            "--listen {listen:?} is not an address like 127.0.0.1:8080 or [::]:8080"
        ))
    })?;

    let tls = tls_files(args, settings)
        .map(ServerTls::load)
        .transpose()?
        .map(Arc::new);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rp-serve")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // The receiver's set-up (and its config checks) needs the runtime
        // for its task tracker, so it happens in here.
        let routes = Routes::from_settings(settings, &printer)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        if settings.dry_run {
            printer.would(
                "listen on",
                &format!("{scheme}://{addr}"),
                format!("routes: {}", routes.enabled.join("; ")),
            );
            return Ok(());
        }
        let max_connections = connection_cap(config.max_connections, &printer);
        let signals = ShutdownSignals::new().context("installing signal handlers")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr().unwrap_or(addr);
        printer.info(format!("listening on {scheme}://{local}"));
        for route in &routes.enabled {
            printer.info(format!("  {route}"));
        }
        let options = ServeOptions {
            max_connections,
            tls,
        };
        serve(listener, routes, printer.clone(), signals, options).await
    })?;
    Ok(ExitStatus::Success)
}

/// The certificate and key: the flags (relative to the working directory),
/// else the config keys (relative to the config file).
fn tls_files(args: &ServeArgs, settings: &Settings) -> Option<TlsFiles> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let config = &settings.config.serve;
    let base = settings
        .config_path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: base.join(cert),
            key: base.join(key),
        }),
        _ => None,
    }
}

/// `serve.max_connections`, after raising the open-files limit as far as
/// allowed, lowered (with a warning) to what that limit leaves room for.
fn connection_cap(wanted: usize, printer: &Printer) -> usize {
    let Some((soft, hard)) = raise_open_files_limit() else {
        return wanted;
    };
    let cap = affordable_connections(wanted, soft);
    if cap < wanted {
        printer.warn(format!(
            "serve.max_connections {wanted} lowered to {cap}: the open files limit \
             (RLIMIT_NOFILE) is {soft} (hard {hard}); raise it (LimitNOFILE= in the systemd unit)"
        ));
    } else {
        printer.detail(format!(
            "at most {cap} connections (open files limit {soft})"
        ));
    }
    cap
}
