//! `crm-identity`: `serve` (default), `migrate`, `dedupe`, `import`, `cleanup`. (see [`crm_identity::cli`]).

/// mimalloc rather than the system's malloc: a part allocates many small, short-lived values
/// per message (JSON, query arguments, spans), and glibc's malloc took about a third of the
/// consumer's CPU in the poll loop (docs/scaling.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_identity::cli::run().await
}
