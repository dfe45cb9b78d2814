fn main() -> std::process::ExitCode {
    bakerd::cli::main()
}
