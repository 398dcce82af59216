//! The `regauth` binary: parse the command line, hand over to the library, map errors to an
//! exit code.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    regauth::cli::main()
}
