//! The Candle image's server.

fn main() -> std::process::ExitCode {
    embbench_server::serve(embbench_candle::load)
}
