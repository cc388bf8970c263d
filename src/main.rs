//! The `rp-devops` binary: everything is in the library.

fn main() -> std::process::ExitCode {
    rp_devops::main().into()
}
