//! Worker variables from the environment, read through the runtime's [`Env`] so tests pass a map.
//! A bad value is a `Config` error naming the variable and the value (the binary exits 64).

use std::str::FromStr;
use std::time::Duration;

use fleet_runtime::{Env, RuntimeError};

/// A whole number of seconds in `min..=max`, or `default` when unset.
pub fn seconds(
    env: &dyn Env,
    var: &str,
    default: Duration,
    min: u64,
    max: u64,
) -> Result<Duration, RuntimeError> {
    Ok(number::<u64>(env, var, min, max)?.map_or(default, Duration::from_secs))
}

/// A number in `min..=max`, or `default` when unset.
pub fn bounded<T>(env: &dyn Env, var: &str, default: T, min: T, max: T) -> Result<T, RuntimeError>
where
    T: FromStr + PartialOrd + Copy + std::fmt::Display,
{
    Ok(number(env, var, min, max)?.unwrap_or(default))
}

fn number<T>(env: &dyn Env, var: &str, min: T, max: T) -> Result<Option<T>, RuntimeError>
where
    T: FromStr + PartialOrd + Copy + std::fmt::Display,
{
    let Some(raw) = env.get(var) else {
        return Ok(None);
    };
    let expected = format!("an integer from {min} to {max}");
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(Some(v)),
        _ => Err(RuntimeError::config(var, &raw, &expected)),
    }
}

/// A non-empty string, or `None` when unset or blank.
pub fn text(env: &dyn Env, var: &str) -> Option<String> {
    env.get(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_runtime::MapEnv;

    #[test]
    fn values_default_parse_and_reject_out_of_range() {
        let env = MapEnv::from_pairs([("A", "30"), ("B", "0"), ("C", "x")]);
        let d = Duration::from_secs(5);
        assert_eq!(
            seconds(&env, "A", d, 1, 60).ok(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(seconds(&env, "UNSET", d, 1, 60).ok(), Some(d));
        let err = seconds(&env, "B", d, 1, 60).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("B=\"0\"") && e.contains("1 to 60")));
        assert!(bounded::<u32>(&env, "C", 3, 1, 10).is_err());
    }
}
