//! External tools (promtool, amtool, ...): where to find them and how to install them.
