//! `evbus webhook`: sign a body as evbus-webhook's deliverer would (and
//! optionally send it to an endpoint: the signature and connectivity check
//! an operator runs), verify a received request's headers and body, or
//! make a new secret.

use std::{
    io::Read,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use evbus_core::EventId;
use evbus_webhook::{
    Secret, Verifier,
    sign::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header},
};

use crate::{error::CliError, ui::Ui};

/// `evbus webhook`'s subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum WebhookCommand {
    /// Sign a body (Standard Webhooks: webhook-id, webhook-timestamp,
    /// webhook-signature) and print the headers, or send it.
    #[command(after_help = "\
Examples:
  echo '{\"type\":\"orders.placed\"}' | evbus webhook sign --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  evbus webhook sign body.json --send https://hooks.example.com/evbus   # EVBUS_WEBHOOK_SECRET holds the secret

With --send, exit status 0 means the endpoint answered 2xx.")]
    Sign(SignArgs),
    /// Check a received request: its three headers and raw body against
    /// one or more secrets, with the timestamp tolerance.
    #[command(after_help = "\
Examples:
  evbus webhook verify body.json --secret whsec_... --id msg_1 --timestamp 1795975200 --signature 'v1,K5oZ...'
  evbus webhook verify body.json --headers request-headers.txt   # `name: value` lines, as sign prints them

Exit status 0 if a signature matches, 1 if not (the error says why).")]
    Verify(VerifyArgs),
    /// Print a new random secret (`whsec_` and 32 bytes in base64).
    #[command(after_help = "Example:\n  evbus webhook secret")]
    Secret,
}

/// The body and the secret(s), as `sign` and `verify` both take them.
#[derive(Debug, clap::Args)]
struct Signed {
    /// The raw body: a file, or `-` (the default) for standard input. It
    /// is signed and verified byte for byte.
    #[arg(default_value = "-")]
    body: PathBuf,
    /// The secret(s), `whsec_<base64>`: sign signs with each (as during a
    /// rotation); verify accepts a match with any.
    #[arg(
        long = "secret",
        value_name = "WHSEC",
        env = "EVBUS_WEBHOOK_SECRET",
        hide_env_values = true,
        required = true,
        value_delimiter = ' '
    )]
    secrets: Vec<Secret>,
}

/// `evbus webhook sign`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    signed: Signed,
    /// The webhook-id (default: `msg_` and a new event id).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// The webhook-timestamp, seconds since the Unix epoch (default: now).
    #[arg(long, value_name = "SECS")]
    timestamp: Option<u64>,
    /// POST the signed body to this URL and report the answer.
    #[arg(long, value_name = "URL")]
    send: Option<String>,
    /// The Content-Type sent with --send.
    #[arg(long, value_name = "TYPE", default_value = "application/json")]
    content_type: String,
    /// Seconds to wait for the endpoint's answer with --send.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
}

/// `evbus webhook verify`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    signed: Signed,
    /// The webhook-id header.
    #[arg(long, value_name = "ID", required_unless_present = "headers")]
    id: Option<String>,
    /// The webhook-timestamp header.
    #[arg(long, value_name = "SECS", required_unless_present = "headers")]
    timestamp: Option<String>,
    /// The webhook-signature header (`v1,<base64>`, space-separated).
    #[arg(long, value_name = "SIG", required_unless_present = "headers")]
    signature: Option<String>,
    /// A file of `name: value` header lines (others are ignored); --id,
    /// --timestamp and --signature override it.
    #[arg(long, value_name = "FILE")]
    headers: Option<PathBuf>,
    /// How far the timestamp may be from this machine's clock, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    tolerance: u64,
}

/// Runs `evbus webhook ...`.
pub(crate) fn run(command: &WebhookCommand, ui: Ui) -> Result<(), CliError> {
    match command {
        WebhookCommand::Sign(args) => sign(args, ui),
        WebhookCommand::Verify(args) => verify(args),
        WebhookCommand::Secret => {
            println!("{}", Secret::generate().to_whsec());
            Ok(())
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_body(path: &Path) -> Result<Vec<u8>, CliError> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body).map_err(|e| {
            CliError::failure(format!("reading the body from standard input failed: {e}"))
        })?;
        return Ok(body);
    }
    std::fs::read(path).map_err(|e| {
        CliError::failure(format!("cannot read the body {}: {e}", path.display()))
            .hint("pass the body's file, or `-` to read it from standard input")
    })
}

fn sign(args: &SignArgs, ui: Ui) -> Result<(), CliError> {
    let body = read_body(&args.signed.body)?;
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("msg_{}", EventId::new()));
    let timestamp = args.timestamp.unwrap_or_else(now_secs);
    let signature = signature_header(&args.signed.secrets, &id, timestamp, &body);
    let Some(url) = &args.send else {
        println!("{HEADER_ID}: {id}");
        println!("{HEADER_TIMESTAMP}: {timestamp}");
        println!("{HEADER_SIGNATURE}: {signature}");
        return Ok(());
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(args.timeout)))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(url)
        .header("content-type", &args.content_type)
        .header(HEADER_ID, &id)
        .header(HEADER_TIMESTAMP, &timestamp.to_string())
        .header(HEADER_SIGNATURE, &signature)
        .send(&body[..]);
    let mut response = response.map_err(|e| {
        CliError::failure(format!("could not reach {url}: {e}"))
            .hint("check the URL, that the endpoint is up, and that this machine can reach it")
    })?;
    let status = response.status();
    let answer = response
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    if !ui.quiet {
        println!("{url} answered {status}");
        if !answer.trim().is_empty() {
            println!("{}", answer.trim_end());
        }
    }
    if status.is_success() {
        Ok(())
    } else {
        let hint = match status.as_u16() {
            401 | 403 => {
                "the endpoint refused the signature: check that it holds the same secret, and that the clocks agree (webhook-timestamp)"
            }
            404 | 405 => "check the URL's path and that the endpoint takes POST",
            _ => "see the endpoint's answer above",
        };
        Err(CliError::failure(format!("{url} answered {status}")).hint(hint))
    }
}

fn verify(args: &VerifyArgs) -> Result<(), CliError> {
    let body = read_body(&args.signed.body)?;
    let mut from_file: [Option<String>; 3] = [None, None, None];
    if let Some(path) = &args.headers {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::failure(format!("cannot read the headers {}: {e}", path.display()))
        })?;
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let slot = match name.trim().to_ascii_lowercase().as_str() {
                HEADER_ID => 0,
                HEADER_TIMESTAMP => 1,
                HEADER_SIGNATURE => 2,
                _ => continue,
            };
            from_file[slot] = Some(value.trim().to_owned());
        }
    }
    let [file_id, file_ts, file_sig] = from_file;
    let missing = |name: &str| {
        CliError::usage(format!(
            "no {name} header: pass it, or a --headers file that has it"
        ))
    };
    let id = args
        .id
        .clone()
        .or(file_id)
        .ok_or_else(|| missing(HEADER_ID))?;
    let timestamp = args
        .timestamp
        .clone()
        .or(file_ts)
        .ok_or_else(|| missing(HEADER_TIMESTAMP))?;
    let signature = args
        .signature
        .clone()
        .or(file_sig)
        .ok_or_else(|| missing(HEADER_SIGNATURE))?;
    let mut secrets = args.signed.secrets.iter().cloned();
    let Some(first) = secrets.next() else {
        return Err(CliError::usage("pass at least one --secret"));
    };
    let verifier = secrets
        .fold(Verifier::new(first), Verifier::with_secret)
        .tolerance(Duration::from_secs(args.tolerance));
    match verifier.verify_parts(&id, &timestamp, &signature, &body, now_secs()) {
        Ok(()) => {
            println!(
                "ok: the signature of {id} matches ({} bytes of body)",
                body.len()
            );
            Ok(())
        }
        Err(e) => {
            let hint = match e {
                evbus_webhook::VerifyError::NoMatch => {
                    "the secret, the id, the timestamp or a byte of the body differs from what was signed (verify the raw body, not a re-encoded one)"
                }
                evbus_webhook::VerifyError::TooOld { .. }
                | evbus_webhook::VerifyError::TooNew { .. } => {
                    "the sender's and this machine's clocks disagree, or this is a replayed request; --tolerance widens the window"
                }
                _ => "check the headers as the request carried them",
            };
            Err(CliError::failure(format!("verification failed: {e}")).hint(hint))
        }
    }
}

/// `evbus replay --to-webhook`: envelopes handed to an evbus-webhook
/// deliverer with one endpoint, on a runtime of its own.
pub(crate) struct ReplaySink {
    runtime: tokio::runtime::Runtime,
    webhooks: evbus_webhook::Webhooks,
    url: String,
    attempts: PathBuf,
    dry_run: bool,
    sent: u64,
    error: Option<evbus_webhook::Error>,
}

/// Events handed over and not finished, past which a replay waits (the
/// endpoint's queue holds twice as many).
const IN_FLIGHT: u64 = 512;

impl ReplaySink {
    /// A deliverer for `url`, signing with `secrets`, journaling attempts
    /// in `attempts` (or a new temporary directory).
    pub(crate) fn start(
        url: &str,
        secrets: &[Secret],
        attempts: Option<&Path>,
        dry_run: bool,
    ) -> Result<ReplaySink, CliError> {
        if secrets.is_empty() {
            return Err(CliError::usage("--to-webhook needs the endpoint's secret")
                .hint("pass --secret whsec_... or set EVBUS_WEBHOOK_SECRET"));
        }
        let attempts = attempts.map_or_else(
            || {
                std::env::temp_dir().join(format!(
                    "evbus-replay-attempts-{}-{}",
                    std::process::id(),
                    now_secs()
                ))
            },
            Path::to_path_buf,
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| CliError::failure(format!("cannot start the delivery runtime: {e}")))?;
        let journal = evbus_journal::Journal::open(&attempts, evbus_journal::JournalOptions::new())
            .map_err(|e| CliError::journal(&attempts, e))?;
        let webhooks = evbus_webhook::Webhooks::builder(journal)
            .runtime(runtime.handle().clone())
            .build()
            .map_err(|e| CliError::failure(format!("cannot start the deliverer: {e}")))?;
        let mut endpoint =
            evbus_webhook::Endpoint::builder("replay", url).queue(2 * IN_FLIGHT as usize);
        for secret in secrets {
            endpoint = endpoint.secret(secret.clone());
        }
        let endpoint = endpoint.build().map_err(|e| {
            CliError::usage(format!("--to-webhook {url}: {e}"))
                .hint("pass the endpoint's full URL, like https://hooks.example.com/evbus")
        })?;
        webhooks
            .register(endpoint)
            .map_err(|e| CliError::failure(format!("cannot register {url}: {e}")))?;
        Ok(ReplaySink {
            runtime,
            webhooks,
            url: url.to_owned(),
            attempts,
            dry_run,
            sent: 0,
            error: None,
        })
    }

    fn outstanding(&self) -> u64 {
        self.webhooks
            .stats()
            .endpoints
            .iter()
            .map(|e| e.outstanding)
            .sum()
    }

    /// Waits for every delivery to end, then reports them; an error if
    /// any was dead-lettered.
    pub(crate) fn finish(self, ui: Ui) -> Result<(), CliError> {
        if let Some(e) = self.error {
            return Err(CliError::failure(format!(
                "delivery to {} stopped: {e}",
                self.url
            )));
        }
        self.runtime.block_on(self.webhooks.wait_idle());
        let stats = self.webhooks.stats();
        let Some(s) = stats.endpoints.first() else {
            return Ok(());
        };
        if !ui.quiet {
            eprintln!(
                "webhook {}: handed over {}, delivered {} ({} at the first attempt), retries {}, failed attempts {}, dead letters {}; attempts journal: {}",
                self.url,
                self.sent,
                s.delivery_success_total,
                s.first_attempt_success_total,
                s.delivery_retry_total,
                s.delivery_failure_total,
                s.delivery_dead_letter_total,
                self.attempts.display()
            );
        }
        if s.delivery_dead_letter_total > 0 {
            return Err(CliError::failure(format!(
                "{} deliveries to {} failed for good (dead letters)",
                s.delivery_dead_letter_total, self.url
            ))
            .hint(format!(
                "`evbus query {}` lists every attempt with its status; fix the endpoint and replay again",
                self.attempts.display()
            )));
        }
        Ok(())
    }
}

impl evbus_journal::ReplayTarget<serde_json::Value> for ReplaySink {
    fn publish_envelope(
        &mut self,
        envelope: evbus_core::Envelope<serde_json::Value>,
    ) -> Result<
        evbus_core::PublishReport,
        evbus_core::PublishError<evbus_core::Envelope<serde_json::Value>>,
    > {
        if self.dry_run {
            return Ok(evbus_core::PublishReport::default());
        }
        // Back-pressure: the deliverer never blocks a send, so the replay
        // waits here while too many deliveries are unfinished.
        if self.sent.is_multiple_of(64) {
            while self.outstanding() >= IN_FLIGHT {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        match self.webhooks.send(&envelope) {
            Ok(_) => {
                self.sent += 1;
                Ok(evbus_core::PublishReport::default())
            }
            Err(e) => {
                self.error = Some(e);
                Err(evbus_core::PublishError::Closed(envelope))
            }
        }
    }
}
