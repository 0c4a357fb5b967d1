//! `config/jiancha.toml` documents every key with its built-in default: it
//! must name every key there is, and its values must be the defaults.

use crate::support::root;
use jiancha::config::Config;

#[test]
fn documented_config_lists_every_key_with_its_default() {
    let path = root().join("config/jiancha.toml");
    let file: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    for (section, keys) in &defaults {
        let keys = keys.as_table().unwrap();
        let documented = file.get(section).and_then(|s| s.as_table()).unwrap_or_else(|| panic!("[{section}] missing"));
        for key in keys.keys() {
            assert!(documented.contains_key(key), "{section}.{key} is not documented in config/jiancha.toml");
        }
    }
    let loaded = Config::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(toml::Table::try_from(loaded).unwrap(), defaults, "config/jiancha.toml differs from the defaults");
}
