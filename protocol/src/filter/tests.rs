use super::*;
use serde_json::json;

/// Health-service entries in Consul's JSON shape.
fn entries() -> Vec<Value> {
    vec![
        json!({"Node": {"Node": "n1", "Address": "10.0.0.1", "Meta": {"rack": "r1"}},
               "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1", "primary"], "Port": 80,
                           "Meta": {"version": "1.2"}, "EnableTagOverride": false, "Weights": {"Passing": 1}},
               "Checks": [{"CheckID": "serfHealth", "Status": "passing"},
                          {"CheckID": "service:web-1", "Status": "critical"}]}),
        json!({"Node": {"Node": "n2", "Address": "10.0.0.2", "Meta": {}},
               "Service": {"ID": "web-2", "Service": "web", "Tags": ["v2"], "Port": 8080,
                           "Meta": {"version": "2.0"}, "EnableTagOverride": true, "Weights": {"Passing": 3}},
               "Checks": [{"CheckID": "serfHealth", "Status": "passing"}]}),
        json!({"Node": {"Node": "n3", "Address": "10.0.0.3", "Meta": null},
               "Service": {"ID": "web-3", "Service": "web", "Tags": [], "Port": 80,
                           "Meta": {}, "EnableTagOverride": false, "Weights": {"Passing": 1}},
               "Checks": []}),
    ]
}

fn selected(expr: &str) -> Vec<String> {
    let filter = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    filter
        .retain(entries())
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn expressions_select_the_expected_items() {
    let table: &[(&str, &[&str])] = &[
        (r#"Service.Tags contains "v2""#, &["web-2"]),
        ("Service.Tags contains v1", &["web-1"]),
        (r#""primary" in Service.Tags"#, &["web-1"]),
        (r#""primary" not in Service.Tags"#, &["web-2", "web-3"]),
        ("Service.Tags not contains v1", &["web-2", "web-3"]),
        ("Service.Port == 80", &["web-1", "web-3"]),
        ("Service.Port != 80", &["web-2"]),
        (r#"Service.Port == "0x50""#, &["web-1", "web-3"]),
        ("Service.EnableTagOverride == true", &["web-2"]),
        ("Service.EnableTagOverride == false", &["web-1", "web-3"]),
        ("Node.Node == n2 or Node.Node == n3", &["web-2", "web-3"]),
        ("Node.Node == n1 and Service.Port == 80", &["web-1"]),
        ("not Node.Node == n1", &["web-2", "web-3"]),
        ("not not Node.Node == n1", &["web-1"]),
        ("not (Node.Node == n1 or Node.Node == n2)", &["web-3"]),
        ("(Node.Node == n1)", &["web-1"]),
        ("Service.Tags is empty", &["web-3"]),
        ("Service.Tags is not empty", &["web-1", "web-2"]),
        ("Checks is empty", &["web-3"]),
        (r#"Service.Meta.version matches "^1\\.""#, &["web-1"]),
        (r#"Service.Meta["version"] == "2.0""#, &["web-2"]),
        (
            r#"Service.Meta.version not matches "^1""#,
            &["web-2", "web-3"],
        ),
        ("Service.ID matches `^web-[12]$`", &["web-1", "web-2"]),
        // Missing map keys: the operator's "not present" answer.
        ("Node.Meta.rack == r1", &["web-1"]),
        ("Node.Meta.rack != r1", &["web-2", "web-3"]),
        ("Node.Meta.rack is empty", &["web-2", "web-3"]),
        ("Node.Meta contains rack", &["web-1"]),
        ("Service.Meta.version contains 2", &["web-1", "web-2"]),
        (r#""/Service/ID" == "web-2""#, &["web-2"]),
        ("any Checks as c { c.Status == critical }", &["web-1"]),
        (
            "all Checks as c { c.Status == passing }",
            &["web-2", "web-3"],
        ),
        (
            "any Service.Meta as k { k == version }",
            &["web-1", "web-2"],
        ),
        ("any Service.Tags as _, t { t == v2 }", &["web-2"]),
        (
            "(any Checks as c { c.Status == critical }) or Service.Port == 8080",
            &["web-1", "web-2"],
        ),
        ("Service.Weights.Passing == 3", &["web-2"]),
        ("  Service.Port==80  ", &["web-1", "web-3"]),
        (
            "Node.Node == n1 or Node.Node == n2 and Service.Port == 80",
            &["web-1"],
        ),
    ];
    for (expr, want) in table {
        assert_eq!(selected(expr), *want, "{expr}");
    }
}

#[test]
fn malformed_expressions_are_errors() {
    for expr in [
        "",
        "   ",
        "Service.Port ==",
        "Service.Port = 80",
        "Service.Tags contains",
        "(Service.Port == 80",
        "Service.Port == 80)",
        r#"Service.Tags contains "v1"#,
        "Service.Meta[version] == x",
        r#"Service.Meta["version" == x"#,
        "Service.Port == 80 and",
        "and Service.Port == 80",
        "Service.Port == 08",
        "Service.Port == 1x",
        r#""a" in "#,
        "any Checks as c { c.Status == critical",
        "any Checks as c, c { c == x }",
        "Service. == x",
        r#"Service.ID == "\q""#,
    ] {
        assert!(Filter::parse(expr).is_err(), "{expr:?} should not parse");
    }
    let deep = format!("{}Service.Port == 80{}", "(".repeat(200), ")".repeat(200));
    assert!(Filter::parse(&deep).is_err());
    assert!(Filter::parse(&"x".repeat(MAX_FILTER_BYTES + 1)).is_err());
}

#[test]
fn evaluation_errors_are_errors_not_false() {
    for expr in [
        "Nope == 1",                          // unknown top-level field
        "Service.Port == abc",                // not an integer
        "Service.EnableTagOverride == maybe", // not a bool
        "Service.Port contains 8",            // contains on a number
        "Service.Port is empty",              // is empty on a number
        "Service.Port matches 8",             // matches on a number
        r#"Service.ID matches "(""#,          // bad regex
        "Service == web",                     // == on a map
        "Service.ID.Sub == x",                // select inside a string
        "Checks.x.Status == passing",         // a list takes indexes
        "any Service.Port as p { p == 1 }",   // not a collection
    ] {
        let filter = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(
            filter.retain(entries()).is_err(),
            "{expr} should fail to evaluate"
        );
    }
}

#[test]
fn strings_unescape_like_go() {
    let item = json!({"S": "a\"b\n\u{e9}"});
    for expr in [r#"S == "a\x22b\nÃ©""#, r#"S == "a\u0022b\n\u00e9""#] {
        // \x22 is one byte in Go; here it is the character '"' (what a UTF-8 filter means).
        let f = Filter::parse(expr).unwrap();
        let _ = f.matches(&item).unwrap();
    }
    let f = Filter::parse(r#"S == "a\u0022b\n\u00e9""#).unwrap();
    assert!(f.matches(&item).unwrap());
    let f = Filter::parse("S matches `b\\n`").unwrap();
    assert!(f.matches(&item).unwrap());
}

#[test]
fn keywords_inside_names_are_names() {
    let item = json!({"notes": "x", "index": 1, "org": "o", "android": true, "is": {"in": 2}});
    for expr in [
        "notes == x",
        "index == 1",
        "org == o",
        "android == true",
        "is.in == 2",
        "notes == x and org == o",
        "not(notes == y)",
    ] {
        let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(f.matches(&item).unwrap(), "{expr}");
    }
}

#[test]
fn list_indexes_select_elements() {
    let item = json!({"Checks": [{"Status": "passing"}, {"Status": "critical"}]});
    let f = Filter::parse("Checks.1.Status == critical and Checks.0.Status == passing").unwrap();
    assert!(f.matches(&item).unwrap());
}
