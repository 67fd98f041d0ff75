//! Argument parsing shared by every applet: argh, with `--help` printed to stdout (exit 0)
//! and a usage error printed to stderr (exit 2), the same way everywhere.

/// Parses `args` into `T`; on `--help` or a usage error prints it and returns the exit code.
pub fn parse<T: argh::FromArgs>(shown_as: &str, args: &[String]) -> Result<T, i32> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd: Vec<&str> = shown_as.split(' ').collect();
    T::from_args(&cmd, &words).map_err(|early| match early.status {
        Ok(()) => {
            print!("{}", early.output);
            0
        }
        Err(()) => {
            eprint!("{}", early.output);
            if !early.output.ends_with('\n') {
                eprintln!();
            }
            2
        }
    })
}
