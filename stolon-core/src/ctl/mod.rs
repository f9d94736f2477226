//! The operations behind stolonctl, usable by any tool that embeds stolon-core.
