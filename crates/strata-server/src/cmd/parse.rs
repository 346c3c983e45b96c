//! A cursor over a command's arguments, for the arguments whose place is not fixed.
//!
//! The dispatcher checks a command's arity before running it, so the arguments the arity
//! guarantees are read by position (`args[1]` for the key) and a list that runs to the end
//! as a slice (`args[2..]`). What the arity leaves open is read with a [`Parse`]: options
//! that may come in any order and repeat (`SET`'s `NX`, `GET`, `EX 10`), an option's value,
//! an optional trailing argument, a form chosen by a keyword. Each read that fails gives the
//! error Redis gives for it: a missing argument or one left over is `ERR syntax error`, a
//! number that is not one is `ERR value is not an integer or out of range`. A command with
//! its own wording for a case (`HELLO`'s `ERR Syntax error in HELLO option ...`) checks
//! for that case before reading.
//!
//! The idea is mini-redis's `parse.rs`, fitted to Redis's grammar: option words are matched
//! without regard to case, integers are read as strictly as Redis reads them
//! ([`parse_integer`](crate::resp::parse_integer)), and a cursor borrows the arguments
//! rather than consuming a frame.
//!
//! `SCAN cursor [MATCH pattern] [COUNT n]`, read this way (the module is private, so the
//! example runs as the unit test `tests::scan_options_read_as_the_module_docs_show`):
//!
//! ```ignore
//! let mut options = Parse::new(args, 2); // after SCAN cursor
//! let (mut pattern, mut count) = (None, 10);
//! while let Some(option) = options.next_arg() {
//!     if is(option, "MATCH") {
//!         pattern = Some(options.next_bytes()?);
//!     } else if is(option, "COUNT") {
//!         count = options.next_int()?;
//!     } else {
//!         return Err(SYNTAX);
//!     }
//! }
//! ```

use bytes::Bytes;

use super::{int, is, Error, SYNTAX};

/// A cursor over `args` (the command's name at 0), from a given argument on.
#[derive(Debug, Clone)]
pub(crate) struct Parse<'a> {
    args: &'a [Bytes],
    /// The index of the next argument to read.
    next: usize,
}

impl<'a> Parse<'a> {
    /// A cursor at `args[first]`: the arguments before it are the name and the ones the
    /// command's arity guarantees, which the command reads by position.
    pub(crate) fn new(args: &'a [Bytes], first: usize) -> Self {
        Parse { args, next: first }
    }

    /// The next argument, or `None` at the end: for a loop over options, or an optional
    /// argument.
    pub(crate) fn next_arg(&mut self) -> Option<&'a Bytes> {
        let arg = self.args.get(self.next)?;
        self.next += 1;
        Some(arg)
    }

    /// The next argument, which must be there (an option's value): `ERR syntax error` at the
    /// end.
    pub(crate) fn next_bytes(&mut self) -> Result<&'a Bytes, Error> {
        self.next_arg().ok_or(SYNTAX)
    }

    /// The next argument as an integer, Redis-strict: `ERR syntax error` at the end, and
    /// `ERR value is not an integer or out of range` for anything but an `i64` written
    /// plainly (no blanks, no `+`, no leading zeros).
    pub(crate) fn next_int(&mut self) -> Result<i64, Error> {
        int(self.next_bytes()?)
    }

    /// Takes the next argument if it is `word`, in any case; says whether it did.
    pub(crate) fn eat(&mut self, word: &str) -> bool {
        let found = self.args.get(self.next).is_some_and(|arg| is(arg, word));
        if found {
            self.next += 1;
        }
        found
    }

    /// How many arguments are left.
    pub(crate) fn remaining(&self) -> usize {
        self.args.len().saturating_sub(self.next)
    }

    /// Whether every argument has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.remaining() == 0
    }

    /// Ends the reading: `ERR syntax error` if arguments are left over.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.is_done() {
            Ok(())
        } else {
            Err(SYNTAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::NOT_INTEGER;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    /// The module docs' example, run.
    fn scan_options(args: &[Bytes]) -> Result<(Option<&Bytes>, i64), Error> {
        let mut options = Parse::new(args, 2); // after SCAN cursor
        let (mut pattern, mut count) = (None, 10);
        while let Some(option) = options.next_arg() {
            if is(option, "MATCH") {
                pattern = Some(options.next_bytes()?);
            } else if is(option, "COUNT") {
                count = options.next_int()?;
            } else {
                return Err(SYNTAX);
            }
        }
        Ok((pattern, count))
    }

    #[test]
    fn scan_options_read_as_the_module_docs_show() {
        let given = args(&["SCAN", "0", "count", "5", "MATCH", "user:*"]);
        let (pattern, count) = scan_options(&given).expect("valid options");
        assert_eq!(pattern.map(|p| &p[..]), Some(&b"user:*"[..]));
        assert_eq!(count, 5);
        assert_eq!(scan_options(&args(&["SCAN", "0"])), Ok((None, 10)));
        assert_eq!(scan_options(&args(&["SCAN", "0", "MATCH"])), Err(SYNTAX));
        assert_eq!(
            scan_options(&args(&["SCAN", "0", "COUNT", "x"])),
            Err(NOT_INTEGER)
        );
        assert_eq!(scan_options(&args(&["SCAN", "0", "FOO", "1"])), Err(SYNTAX));
    }

    #[test]
    fn reads_from_the_first_argument_given() {
        let given = args(&["SET", "k", "v", "NX"]);
        let mut p = Parse::new(&given, 3);
        assert_eq!(p.remaining(), 1);
        assert_eq!(p.next_arg().map(|a| &a[..]), Some(&b"NX"[..]));
        assert_eq!(p.next_arg(), None);
        assert!(p.is_done());
        // A start past the end is simply the end.
        let mut p = Parse::new(&given, 9);
        assert_eq!(p.remaining(), 0);
        assert_eq!(p.next_arg(), None);
        assert_eq!(p.finish(), Ok(()));
    }

    #[test]
    fn a_missing_argument_is_a_syntax_error() {
        let given = args(&["GETEX", "k", "EX"]);
        let mut p = Parse::new(&given, 2);
        assert_eq!(p.next_bytes().map(|a| &a[..]), Ok(&b"EX"[..]));
        assert_eq!(p.next_bytes(), Err(SYNTAX));
        assert_eq!(p.next_int(), Err(SYNTAX));
    }

    #[test]
    fn integers_are_read_as_redis_reads_them() {
        let given = args(&[
            "X",
            "42",
            "-7",
            "+1",
            "01",
            " 1",
            "9223372036854775808",
            "a",
        ]);
        let mut p = Parse::new(&given, 1);
        assert_eq!(p.next_int(), Ok(42));
        assert_eq!(p.next_int(), Ok(-7));
        for _ in 0..5 {
            assert_eq!(p.next_int(), Err(NOT_INTEGER));
        }
        // A bad integer is still consumed.
        assert!(p.is_done());
        assert_eq!(p.next_int(), Err(SYNTAX));
    }

    #[test]
    fn eat_takes_only_the_word_asked_for_in_any_case() {
        let given = args(&["FLUSHDB", "async", "SYNC"]);
        let mut p = Parse::new(&given, 1);
        assert!(!p.eat("SYNC"));
        assert_eq!(p.remaining(), 2);
        assert!(p.eat("ASYNC"));
        assert!(!p.eat("ASYNC"));
        assert!(p.eat("sync"));
        assert!(!p.eat("SYNC"), "nothing left to take");
        assert!(p.is_done());
        // A prefix is not the word.
        let given = args(&["X", "EXAT"]);
        assert!(!Parse::new(&given, 1).eat("EX"));
    }

    #[test]
    fn finish_refuses_leftovers() {
        let given = args(&["STRATA.STATS", "a", "b"]);
        let mut p = Parse::new(&given, 1);
        assert!(p.next_arg().is_some());
        assert_eq!(p.clone().finish(), Err(SYNTAX));
        assert!(p.next_arg().is_some());
        assert_eq!(p.finish(), Ok(()));
    }
}
