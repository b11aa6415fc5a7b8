//! Counts and rates as the command line writes them: `10k`, `1.5M`.

/// Parses a count with an optional `k` (thousand) or `M` (million) suffix: `10k`, `1.5M`.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let value = parse_scaled(text)?;
    if value.fract() != 0.0 || value < 0.0 {
        return Err(format!("'{text}' is not a whole number"));
    }
    Ok(value as u64)
}

/// Parses a positive number with an optional `k` or `M` suffix.
pub fn parse_scaled(text: &str) -> Result<f64, String> {
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1e3),
        None => match text.strip_suffix(['m', 'M']) {
            Some(d) => (d, 1e6),
            None => (text, 1.0),
        },
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a number (10, 10k, 1.5M)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("'{text}' is not a non-negative number"));
    }
    Ok(value * scale)
}
