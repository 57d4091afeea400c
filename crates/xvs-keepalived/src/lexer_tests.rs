use super::seq::parse_c_long;
use super::*;

#[test]
fn decomment_rules() {
    assert_eq!(decomment("  a b # c").0, "a b");
    assert_eq!(decomment("a ! c").0, "a");
    assert_eq!(decomment("a \"# x\" ! c").0, "a \"# x\"");
    assert_eq!(decomment("a \\# b").0, "a # b");
    assert_eq!(decomment("a \\").0, "a\\");
    assert!(decomment("a \"b").1);
}

#[test]
fn words() {
    assert_eq!(split_words("a \"b c\" d").0, ["a", "b c", "d"]);
    assert_eq!(split_words("ab\"c d\"").0, ["ab", "c d"]);
    assert!(split_words("a \"b").1);
    assert_eq!(
        split_quoted("/bin/x 'a b' \"c d\"e", true).unwrap(),
        ["/bin/x", "a b", "c de"]
    );
    assert_eq!(split_quoted("a\\x41\\tb", true).unwrap(), ["aA\tb"]);
    assert_eq!(split_quoted("a\\x41", false).unwrap(), ["a\\x41"]);
    assert!(split_quoted("'a", true).is_err());
}

#[test]
fn c_long() {
    assert_eq!(parse_c_long("0x10"), Some(16));
    assert_eq!(parse_c_long("010"), Some(8));
    assert_eq!(parse_c_long("-3"), Some(-3));
    assert_eq!(parse_c_long("x"), None);
}
