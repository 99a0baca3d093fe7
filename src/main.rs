#[tokio::main]
async fn main() -> std::process::ExitCode {
    tim_kafka_bridge::cli::run().await
}
