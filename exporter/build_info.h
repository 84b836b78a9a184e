// Build information: version, git revision, build date and the default config text
// embedded at build time. Constants only; any thread may read them.
#pragma once

namespace pidfd_exporter {

extern const char kVersion[];
extern const char kRevision[];
extern const char kBuildDate[];
// The text of config/pidfd_exporter.yml, used when --config.file is not given and
// /etc/pidfd_exporter/config.yml does not exist.
extern const char kBuiltinConfig[];

}  // namespace pidfd_exporter
