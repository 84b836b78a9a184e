// SetAssigner: which set a process belongs to, if any. It owns the compiled sets of the
// running config (ProcessSets), each set's origin (its config entry's name template, which
// names it across reloads) and the generation counters that tell the scan when a process
// that matched nothing must be looked at again. Attributes and the lineage in, an optional
// Membership out: a process that belongs to no set has no set index at all.
// Event-loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "process_set.h"

namespace pidfd_exporter {

// A children: true set that a process descends from: the set of its nearest ancestor that
// belongs to one. Named by origin too, so that it outlives a reload that keeps the set.
struct Lineage {
  size_t set_index = 0;  // into the process_sets of the config of `config_generation`
  uint64_t config_generation = 0;
  std::string origin;
};

// A process's place in the running config.
struct Membership {
  size_t set_index = 0;  // into the process_sets of the config of `config_generation`
  uint64_t config_generation = 0;
  std::string origin;         // the set's config entry name template: names it across reloads
  std::string name;           // the rendered set name (raw bytes; Metrics sanitizes)
  bool children = false;      // the set's `children` flag: this process's descendants join it
  bool via_ancestor = false;  // placed by its lineage, not by its own attributes
  // The lineage it was born into, kept whatever set it matches itself: a process that first
  // matched on its parent's name and renamed itself later, or whose parent exited (a
  // double-forked daemon, re-parented to init), still descends from that set.
  std::optional<Lineage> lineage;
};

class SetAssigner {
 public:
  explicit SetAssigner(const Config& config);

  // Swaps in a new, validated config. Memberships handed out before are stale: pass each
  // through Assign() again (as `previous`).
  void Apply(const Config& config);

  // Where `attributes` belongs: the first set whose matchers accept it, else the set of its
  // lineage. The lineage is `from_ancestors` (the caller walks the live parent chain: see
  // LineageOf), else the one `previous` was born into, as long as that set still exists.
  std::optional<Membership> Assign(const ProcessAttributes& attributes,
                                   const std::optional<Lineage>& from_ancestors,
                                   const std::optional<Membership>& previous = std::nullopt) const;
  // What a member hands down to its descendants: its own set when that is a children: true
  // set, else the lineage it was born into.
  static std::optional<Lineage> LineageOf(const Membership& member);
  // The membership a descendant of `lineage` gets by lineage alone; nullopt when the set is
  // gone (a reload removed it or made it a set without children).
  std::optional<Membership> Descend(const Lineage& lineage, const ProcessAttributes& descendant) const;
  // The origin of every set of the running config (Metrics keeps a set's series across a
  // reload while its origin is still configured).
  const std::vector<std::string>& Origins() const { return origins_; }
  std::vector<std::string> FixedNames() const { return sets_->FixedNames(); }

  // AttributeNeed bits: what the matchers and templates read beyond stat.
  unsigned NeededAttributes() const { return sets_->NeededAttributes(); }
  // Exit records (taskstats) carry the name alone: they can place a process only when every
  // matcher and set name needs nothing else.
  bool NameAlonePlaces() const { return NeededAttributes() == 0; }
  // A fork has its parent's attributes but for its PID and parent (a later exec or rename
  // arrives as its own event): it matches what its parent matched unless a set picks
  // processes by PID (pidfile).
  bool ForkMatchesAsItsParent() const { return !sets_->MatchesByPid(); }

  // Generations: a process that matched nothing is looked at again when one moved.
  uint64_t ConfigGeneration() const { return config_generation_; }
  uint64_t PidfileGeneration() const { return pidfile_generation_; }
  uint64_t LineageGeneration() const { return lineage_generation_; }
  // A process joined a children: true set: unmatched processes may be its descendants.
  void LineageGrew() { ++lineage_generation_; }
  // Re-reads the pidfiles; true (and a new pidfile generation) when a value changed.
  bool RefreshPidfiles();

 private:
  // `lineage` in the running config: its own index when made under it, else the children:
  // true set with the same origin; nullopt when there is none.
  std::optional<Lineage> Current(const Lineage& lineage) const;
  Membership Make(size_t set_index, std::string name, bool via_ancestor,
                  std::optional<Lineage> lineage) const;

  std::unique_ptr<ProcessSets> sets_;
  std::vector<std::string> origins_;  // by set index
  std::vector<bool> children_;        // by set index
  uint64_t config_generation_ = 0;    // 1 once the first config is applied
  uint64_t pidfile_generation_ = 1;
  uint64_t lineage_generation_ = 1;
};

}  // namespace pidfd_exporter
