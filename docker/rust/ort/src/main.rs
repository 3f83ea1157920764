//! The ONNX Runtime (Rust) image's server.

fn main() -> std::process::ExitCode {
    embbench_server::serve(embbench_ort::load)
}
