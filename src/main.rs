// glibc's malloc was about a tenth of the bridge's CPU under load (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tim_kafka_bridge::cli::run().await
}
