//! The derive as a user meets it: cases that must compile and run, and
//! cases that must not compile, each with the exact message it must give
//! (`ui/fail/*.stderr`). Regenerate the messages with
//! `TRYBUILD=overwrite cargo test -p evbus-derive --test ui` and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
