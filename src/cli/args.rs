//! A small flag parser: `--name value` options and `--flag` switches, each checked once.

use softmoe::Error;

pub struct Args {
    rest: Vec<String>,
}

impl Args {
    pub fn new(argv: Vec<String>) -> Self {
        Args { rest: argv }
    }

    /// Takes the first word (the command).
    pub fn command(&mut self) -> Option<String> {
        if self.rest.is_empty() {
            None
        } else {
            Some(self.rest.remove(0))
        }
    }

    /// Takes `--name value`, if present.
    pub fn option(&mut self, name: &str) -> Result<Option<String>, Error> {
        let flag = format!("--{name}");
        let Some(i) = self.rest.iter().position(|a| *a == flag) else {
            return Ok(None);
        };
        if i + 1 >= self.rest.len() || self.rest[i + 1].starts_with("--") {
            return Err(Error::Usage(format!("{flag} needs a value")));
        }
        let value = self.rest.remove(i + 1);
        self.rest.remove(i);
        if self.rest.contains(&flag) {
            return Err(Error::Usage(format!("{flag} given twice")));
        }
        Ok(Some(value))
    }

    /// Takes `--name v1 v2 …` (every value up to the next flag).
    pub fn values(&mut self, name: &str) -> Result<Vec<String>, Error> {
        let flag = format!("--{name}");
        let Some(i) = self.rest.iter().position(|a| *a == flag) else {
            return Ok(Vec::new());
        };
        let end = self.rest[i + 1..].iter().position(|a| a.starts_with("--")).map_or(self.rest.len(), |e| i + 1 + e);
        let values: Vec<String> = self.rest.drain(i..end).skip(1).collect();
        if values.is_empty() {
            return Err(Error::Usage(format!("{flag} needs a value")));
        }
        Ok(values)
    }

    /// Takes `--name value`, failing when absent.
    pub fn required(&mut self, name: &str) -> Result<String, Error> {
        self.option(name)?.ok_or_else(|| Error::Usage(format!("--{name} is required")))
    }

    /// Takes the switch `--name`.
    pub fn switch(&mut self, name: &str) -> bool {
        let flag = format!("--{name}");
        let before = self.rest.len();
        self.rest.retain(|a| *a != flag);
        self.rest.len() != before
    }

    /// Takes the remaining arguments as the positional ones named in `names`, failing on a flag
    /// not taken and on any more or fewer.
    pub fn positionals<const N: usize>(self, names: [&str; N]) -> Result<[String; N], Error> {
        if let Some(flag) = self.rest.iter().find(|a| a.starts_with("--")) {
            return Err(Error::Usage(format!("unexpected argument `{flag}`")));
        }
        let found = self.rest.len();
        self.rest.try_into().map_err(|rest: Vec<String>| {
            let what = if found > N { format!("unexpected argument `{}`", rest[N]) } else { format!("{} is required", names[found]) };
            Error::Usage(format!("{what} (expected {})", names.join(" ")))
        })
    }

    /// Fails on anything not taken.
    pub fn finish(self) -> Result<(), Error> {
        match self.rest.first() {
            None => Ok(()),
            Some(a) => Err(Error::Usage(format!("unexpected argument `{a}`"))),
        }
    }
}
