// SetAssigner: direct matches, lineage through children: true sets, and what a reload keeps.
#include "set_assigner.h"

#include <gtest/gtest.h>

#include <string>

#include "config.h"

namespace pidfd_exporter {
namespace {

Config ConfigOf(const std::string& yaml) {
  ConfigResult result = ParseConfig(yaml, "t.yml");
  for (const ConfigError& error : result.errors) ADD_FAILURE() << error.ToString();
  return result.config.value_or(Config{});
}

ProcessAttributes Process(std::string comm, int pid = 100, int parent_pid = 1) {
  ProcessAttributes process;
  process.pid = pid;
  process.parent_pid = parent_pid;
  process.comm = std::move(comm);
  return process;
}

constexpr char kTwoSets[] =
    "process_sets:\n"
    "  - name: web\n    comm: [nginx]\n    children: true\n"
    "  - name: \"db-{{.Comm}}\"\n    comm: [postgres]\n";

TEST(SetAssignerTest, DirectMatchHasNoLineageWithoutAncestors) {
  SetAssigner assigner(ConfigOf(kTwoSets));
  auto web = assigner.Assign(Process("nginx"), std::nullopt);
  ASSERT_TRUE(web.has_value());
  EXPECT_EQ(web->name, "web");
  EXPECT_EQ(web->origin, "web");
  EXPECT_TRUE(web->children);
  EXPECT_FALSE(web->via_ancestor);
  EXPECT_FALSE(web->lineage.has_value());
  auto db = assigner.Assign(Process("postgres"), std::nullopt);
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(db->name, "db-postgres");
  EXPECT_EQ(db->origin, "db-{{.Comm}}");
  EXPECT_FALSE(assigner.Assign(Process("bash"), std::nullopt).has_value()) << "no set, no index";
}

TEST(SetAssignerTest, DescendantsJoinThroughLineageAndKeepIt) {
  SetAssigner assigner(ConfigOf(kTwoSets));
  auto parent = assigner.Assign(Process("nginx", 10), std::nullopt);
  ASSERT_TRUE(parent.has_value());
  const std::optional<Lineage> handed_down = SetAssigner::LineageOf(*parent);
  ASSERT_TRUE(handed_down.has_value());

  // A worker renamed away from the matcher: a member through its lineage.
  auto worker = assigner.Assign(Process("worker", 11, 10), handed_down);
  ASSERT_TRUE(worker.has_value());
  EXPECT_EQ(worker->name, "web");
  EXPECT_TRUE(worker->via_ancestor);
  // A child that still has its parent's name matches directly, but is born into the lineage:
  // when it renames itself after its parent exited, it stays.
  auto early = assigner.Assign(Process("nginx", 12, 10), handed_down);
  ASSERT_TRUE(early.has_value());
  EXPECT_FALSE(early->via_ancestor);
  ASSERT_TRUE(early->lineage.has_value());
  auto renamed_orphan = assigner.Assign(Process("daemon", 12, 1), std::nullopt, early);
  ASSERT_TRUE(renamed_orphan.has_value()) << "an orphan lost the set it descends from";
  EXPECT_EQ(renamed_orphan->name, "web");
  EXPECT_TRUE(renamed_orphan->via_ancestor);
  // A direct match wins over the lineage.
  auto db_child = assigner.Assign(Process("postgres", 13, 10), handed_down);
  ASSERT_TRUE(db_child.has_value());
  EXPECT_EQ(db_child->name, "db-postgres");
  // A non-children set hands down only the lineage it was born into.
  EXPECT_FALSE(SetAssigner::LineageOf(*assigner.Assign(Process("postgres"), std::nullopt)).has_value());
  EXPECT_TRUE(SetAssigner::LineageOf(*db_child).has_value());
}

TEST(SetAssignerTest, ReloadKeepsLineageWhileItsSetExistsByOrigin) {
  SetAssigner assigner(ConfigOf(kTwoSets));
  auto parent = assigner.Assign(Process("nginx", 10), std::nullopt);
  auto worker = assigner.Assign(Process("worker", 11, 10), SetAssigner::LineageOf(*parent));
  ASSERT_TRUE(worker.has_value());

  // The same set moved to another index: the lineage follows its origin.
  assigner.Apply(
      ConfigOf("process_sets:\n  - name: other\n    comm: [x]\n"
               "  - name: web\n    comm: [nginx]\n    children: true\n"));
  auto kept = assigner.Assign(Process("worker", 11, 1), std::nullopt, worker);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->name, "web");
  EXPECT_EQ(kept->set_index, 1u);
  EXPECT_EQ(kept->config_generation, assigner.ConfigGeneration());

  // The set is gone (or no longer hands down): no membership, never an index into nothing.
  assigner.Apply(ConfigOf("process_sets:\n  - name: unrelated\n    comm: [x]\n"));
  EXPECT_FALSE(assigner.Assign(Process("worker", 11, 1), std::nullopt, kept).has_value());
  assigner.Apply(ConfigOf("process_sets:\n  - name: web\n    comm: [nginx]\n"));
  EXPECT_FALSE(assigner.Assign(Process("worker", 11, 1), std::nullopt, kept).has_value());
}

TEST(SetAssignerTest, StaleLineageFromAnOlderConfigIsTranslatedNotIndexed) {
  SetAssigner assigner(ConfigOf(kTwoSets));
  auto parent = assigner.Assign(Process("nginx", 10), std::nullopt);
  const Lineage old = *SetAssigner::LineageOf(*parent);
  // Index 0 of the new config is a set without children: the old index must not be used.
  assigner.Apply(ConfigOf("process_sets:\n  - name: first\n    comm: [zzz]\n"));
  EXPECT_FALSE(assigner.Descend(old, Process("worker")).has_value());
}

TEST(SetAssignerTest, GenerationsMoveWhenTheirCauseChanges) {
  SetAssigner assigner(ConfigOf(kTwoSets));
  const uint64_t config = assigner.ConfigGeneration();
  const uint64_t lineage = assigner.LineageGeneration();
  assigner.LineageGrew();
  EXPECT_EQ(assigner.LineageGeneration(), lineage + 1);
  assigner.Apply(ConfigOf(kTwoSets));
  EXPECT_EQ(assigner.ConfigGeneration(), config + 1);
  EXPECT_FALSE(assigner.RefreshPidfiles()) << "no pidfile sets: nothing changed";
}

TEST(SetAssignerTest, NameAlonePlacesOnlyCommOnlyConfigs) {
  EXPECT_TRUE(SetAssigner(ConfigOf(kTwoSets)).NameAlonePlaces());
  EXPECT_FALSE(SetAssigner(ConfigOf("process_sets:\n  - name: \"{{.ExeBase}}\"\n")).NameAlonePlaces());
  EXPECT_FALSE(SetAssigner(ConfigOf("process_sets:\n  - name: u\n    user: [root]\n")).NameAlonePlaces());
}

}  // namespace
}  // namespace pidfd_exporter
