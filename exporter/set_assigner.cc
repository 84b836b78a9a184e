#include "set_assigner.h"

namespace pidfd_exporter {

SetAssigner::SetAssigner(const Config& config) {
  Apply(config);
}

void SetAssigner::Apply(const Config& config) {
  sets_ = std::make_unique<ProcessSets>(config);
  origins_.clear();
  children_.clear();
  for (const auto& set : config.process_sets) {
    origins_.push_back(set.name);
    children_.push_back(set.children);
  }
  ++config_generation_;
}

Membership SetAssigner::Make(size_t set_index, std::string name, bool via_ancestor,
                             std::optional<Lineage> lineage) const {
  Membership membership;
  membership.set_index = set_index;
  membership.config_generation = config_generation_;
  membership.origin = origins_[set_index];
  membership.name = std::move(name);
  membership.children = children_[set_index];
  membership.via_ancestor = via_ancestor;
  membership.lineage = std::move(lineage);
  return membership;
}

std::optional<Lineage> SetAssigner::LineageOf(const Membership& member) {
  if (member.children) return Lineage{member.set_index, member.config_generation, member.origin};
  return member.lineage;
}

std::optional<Lineage> SetAssigner::Current(const Lineage& lineage) const {
  if (lineage.config_generation == config_generation_) {
    if (lineage.set_index < children_.size() && children_[lineage.set_index]) return lineage;
    return std::nullopt;
  }
  for (size_t index = 0; index < origins_.size(); ++index) {
    if (children_[index] && origins_[index] == lineage.origin)
      return Lineage{index, config_generation_, origins_[index]};
  }
  return std::nullopt;
}

std::optional<Membership> SetAssigner::Descend(const Lineage& lineage,
                                               const ProcessAttributes& descendant) const {
  std::optional<Lineage> current = Current(lineage);
  if (!current) return std::nullopt;
  const size_t index = current->set_index;
  return Make(index, sets_->NameForDescendant(index, descendant), /*via_ancestor=*/true, std::move(current));
}

std::optional<Membership> SetAssigner::Assign(const ProcessAttributes& attributes,
                                              const std::optional<Lineage>& from_ancestors,
                                              const std::optional<Membership>& previous) const {
  // Lineage outlives the parent: a double-forked daemon is re-parented to init (or a
  // subreaper), so the live chain no longer reaches the member it descends from.
  std::optional<Lineage> lineage = from_ancestors;
  if (!lineage && previous) lineage = previous->lineage;
  if (lineage) lineage = Current(*lineage);
  if (std::optional<MatchResult> match = sets_->Match(attributes))
    return Make(match->set_index, std::move(match->name), /*via_ancestor=*/false, std::move(lineage));
  if (lineage) return Descend(*lineage, attributes);
  return std::nullopt;
}

bool SetAssigner::RefreshPidfiles() {
  if (!sets_->RefreshPidfiles()) return false;
  ++pidfile_generation_;
  return true;
}

}  // namespace pidfd_exporter
