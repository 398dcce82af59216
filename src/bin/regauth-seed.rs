//! `regauth-seed`: fills a regauth data directory with many tokens for the load benchmark
//! (`scripts/bench/load.sh`, issue 5). Bench-only: built only with `--features bench-baseline`.
//!
//! Writes through [`SledStore::create_unflushed`] (the same transaction as `Store::create`,
//! without the per-write flush) and flushes every `--flush-every` tokens, so a million tokens
//! take minutes rather than a million fsyncs. Run it while no server has the directory open.
//! With `--store-url postgres://…` it seeds that PostgreSQL database instead, through
//! [`PgStore::import`] (one transaction per `--flush-every` tokens).
//!
//! Tokens are `bench-0000000`, `bench-0000001`, ... in one registry, each with the scopes
//! `repository bench/* pull,push` and `repository base/* pull`. For `--sample` of them, spread
//! evenly over the name range, it writes the ready `Authorization` header value
//! (`Basic base64(name:password)`) one per line to `--creds`, for the load generator.
//!
//! With `--expiring N --expire-within SECONDS` it also writes N tokens `expiring-0000000`, ...
//! whose expiries are spread evenly over the next SECONDS, so that the server's expiry sweep
//! deletes some every time it runs (the soak test, `scripts/bench/soak.sh`): the admin API cannot
//! create a token that expires in less than an hour.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use base64::Engine;
use chrono::Utc;
use clap::Parser;
use regauth::domain::secret::new_password;
use regauth::domain::{Scope, SecretHash, Status, Token};
use regauth::store::postgres::PgOptions;
use regauth::store::{PgStore, SledStore, Store};
use uuid::Uuid;

/// Seeds a regauth data directory with tokens for benchmarks.
#[derive(Debug, Parser)]
#[command(name = "regauth-seed")]
struct Args {
    /// The server's `data_dir`; the store is `<data-dir>/store`, as `regauth serve` opens it.
    #[arg(long)]
    data_dir: PathBuf,
    /// How many tokens to create.
    #[arg(long)]
    count: usize,
    /// Registry id the tokens belong to.
    #[arg(long, default_value = "default")]
    registry: String,
    /// Where to write the sampled tokens' `Authorization` header values.
    #[arg(long)]
    creds: PathBuf,
    /// How many tokens' credentials to write (at most `count`).
    #[arg(long, default_value_t = 10_000)]
    sample: usize,
    /// Flush to disk after this many tokens (and at the end).
    #[arg(long, default_value_t = 50_000)]
    flush_every: usize,
    /// Also write this many tokens that expire within `--expire-within` seconds.
    #[arg(long, default_value_t = 0)]
    expiring: usize,
    /// The window over which the `--expiring` tokens' expiries are spread evenly.
    #[arg(long, default_value_t = 3600)]
    expire_within: u32,
    /// Seed this PostgreSQL database instead of `<data-dir>/store` (sled).
    #[arg(long)]
    store_url: Option<String>,
}

/// Where the tokens go.
enum Target {
    Sled(SledStore),
    Postgres(PgStore, Vec<Token>),
}

impl Target {
    fn add(&mut self, token: Token) -> anyhow::Result<()> {
        match self {
            Target::Sled(s) => Ok(s.create_unflushed(&token)?),
            Target::Postgres(_, pending) => {
                pending.push(token);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Target::Sled(s) => Ok(s.flush()?),
            Target::Postgres(s, pending) => {
                let (copied, _) = s.import(pending, &[]).await?;
                anyhow::ensure!(copied == pending.len(), "names already taken in PostgreSQL");
                pending.clear();
                Ok(())
            }
        }
    }

    fn store(&self) -> &dyn Store {
        match self {
            Target::Sled(s) => s,
            Target::Postgres(s, _) => s,
        }
    }
}

fn main() -> ExitCode {
    // The stores are async; a seeding run is one task.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("regauth-seed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Args::parse())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regauth-seed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    // The data dir, the store and the --creds file (passwords) are private, as `serve` makes them.
    regauth::server::private_umask();
    let dir = args.data_dir.join("store");
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let mut store = match &args.store_url {
        Some(url) => Target::Postgres(
            PgStore::open(PgOptions::new(url.clone())).await?,
            Vec::new(),
        ),
        None => Target::Sled(SledStore::open(&dir)?),
    };
    let existing = store.store().count().await?;
    anyhow::ensure!(
        existing == 0,
        "the store already holds {existing} tokens; seed an empty one"
    );

    let actions = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let scopes = vec![
        Scope::parse("repository", "bench/*", &actions(&["pull", "push"]))?,
        Scope::parse("repository", "base/*", &actions(&["pull"]))?,
    ];
    let sample = args.sample.clamp(1, args.count.max(1));
    // Every `stride`-th token is sampled, so the sample spans the whole key range.
    let stride = (args.count / sample).max(1);
    let mut creds = std::io::BufWriter::new(
        std::fs::File::create(&args.creds)
            .with_context(|| format!("cannot create {}", args.creds.display()))?,
    );
    let now = Utc::now();
    for i in 0..args.count {
        let name = format!("bench-{i:07}");
        let password = new_password()
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        let token = Token {
            id: Uuid::new_v4(),
            registry: args.registry.clone(),
            name: name.parse()?,
            status: Status::Enabled,
            expiry: None,
            scopes: scopes.clone(),
            secret_hash: SecretHash::of(&password),
            created: now,
            created_by: "regauth-seed".to_string(),
            modified: now,
            modified_by: "regauth-seed".to_string(),
            previous: None,
            last_used: None,
            networks: vec![],
            owner: None,
            description: None,
            federation: None,
        };
        store.add(token)?;
        if i % stride == 0 && i / stride < sample {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
            writeln!(creds, "Basic {basic}")?;
        }
        if (i + 1) % args.flush_every == 0 {
            store.flush().await?;
            eprintln!(
                "regauth-seed: {} tokens, {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Token i of n expires (i + 1) / n of the window from now: the last at its end.
    let window_ms = i64::from(args.expire_within) * 1000;
    let n = i64::try_from(args.expiring)?;
    for i in 0..n {
        let token = Token {
            id: Uuid::new_v4(),
            registry: args.registry.clone(),
            name: format!("expiring-{i:07}").parse()?,
            status: Status::Enabled,
            expiry: Some(now + chrono::TimeDelta::milliseconds(window_ms * (i + 1) / n)),
            scopes: scopes.clone(),
            secret_hash: SecretHash::of(
                &new_password()
                    .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?,
            ),
            created: now,
            created_by: "regauth-seed".to_string(),
            modified: now,
            modified_by: "regauth-seed".to_string(),
            previous: None,
            last_used: None,
            networks: vec![],
            owner: None,
            description: None,
            federation: None,
        };
        store.add(token)?;
    }
    store.flush().await?;
    creds.flush()?;
    eprintln!(
        "regauth-seed: {} tokens in {} in {:.1} s ({} credentials in {})",
        store.store().count().await?,
        match &args.store_url {
            Some(_) => "PostgreSQL".to_string(),
            None => dir.display().to_string(),
        },
        started.elapsed().as_secs_f64(),
        sample.min(args.count),
        args.creds.display()
    );
    Ok(())
}
