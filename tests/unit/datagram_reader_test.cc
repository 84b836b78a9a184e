// netlink::DatagramReader on a datagram socket pair (the reader needs no netlink to count
// slots): a batch that leaves slots empty says the queue was read empty (kDrained), one that
// fills every slot does not, at the slot count and one past it.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <span>

#include "netlink_socket.h"
#include "unique_fd.h"

namespace pidfd_exporter::netlink {
namespace {

constexpr size_t kSlotBytes = 64;

class DatagramReaderTest : public testing::Test {
 protected:
  void SetUp() override {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair), 0);
    receiver_ = UniqueFd(pair[0]);
    sender_ = UniqueFd(pair[1]);
  }
  void Send(int count) {
    for (int i = 0; i < count; ++i) {
      const uint8_t byte = static_cast<uint8_t>(i);
      ASSERT_EQ(send(sender_.get(), &byte, 1, 0), 1);
    }
  }
  // One ReadOnce: its status, and how many datagrams it handed over.
  DatagramReader::Status ReadOnce(int* received) {
    int handed = 0;
    size_t rejected = 0;
    int error_number = 0;
    const DatagramReader::Status status = reader_.ReadOnce(
        receiver_.get(), [&](std::span<const uint8_t>) { ++handed; }, received, &rejected, &error_number);
    EXPECT_EQ(rejected, 0u);
    EXPECT_EQ(handed, *received);
    return status;
  }

  UniqueFd receiver_;
  UniqueFd sender_;
  DatagramReader reader_{kSlotBytes};
};

TEST_F(DatagramReaderTest, FewerThanTheSlotsIsDrained) {
  Send(3);
  int received = 0;
  EXPECT_EQ(ReadOnce(&received), DatagramReader::Status::kDrained);
  EXPECT_EQ(received, 3);
  EXPECT_EQ(ReadOnce(&received), DatagramReader::Status::kWouldBlock);
  EXPECT_EQ(received, 0);
}

TEST_F(DatagramReaderTest, ExactlyTheSlotsIsNotDrained) {
  Send(static_cast<int>(DatagramReader::kSlots));
  int received = 0;
  EXPECT_EQ(ReadOnce(&received), DatagramReader::Status::kData);
  EXPECT_EQ(received, static_cast<int>(DatagramReader::kSlots));
  EXPECT_EQ(ReadOnce(&received), DatagramReader::Status::kWouldBlock);
}

TEST_F(DatagramReaderTest, OnePastTheSlotsIsDrainedOnTheSecondRead) {
  Send(static_cast<int>(DatagramReader::kSlots) + 1);
  int received = 0;
  EXPECT_EQ(ReadOnce(&received), DatagramReader::Status::kData);
  EXPECT_EQ(received, static_cast<int>(DatagramReader::kSlots));
  EXPECT_EQ(ReadOnce(&received), DatagramReader::Status::kDrained);
  EXPECT_EQ(received, 1);
}

}  // namespace
}  // namespace pidfd_exporter::netlink
