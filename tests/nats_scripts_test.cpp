// The NATS test scripts (tests/nats/): a three-node JetStream cluster on
// loopback, and two network namespaces joined by a delayed, lossy link.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "nats_test_support.hpp"
#include "tool_run.hpp"

namespace {

using namespace sluice::test::nats;
using sluice::test::tool;

bool accepts(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return ok;
}

TEST(NatsScripts, ClusterStartsThreeNodesThatReplicateAndKillsOneByName) {
  if (!have_nats_server()) {
    GTEST_SKIP() << "nats-server is not installed (tools/setup)";
  }
  TempDir dir;
  Cluster cluster(dir);
  ASSERT_EQ(cluster.started().status, 0) << cluster.started().out;
  const std::vector<std::string> urls = split(cluster.urls(), ',');
  ASSERT_EQ(urls.size(), 3U) << cluster.started().out;
  std::vector<std::uint16_t> ports;
  for (const std::string& url : urls) {
    ports.push_back(static_cast<std::uint16_t>(std::stoul(url.substr(url.rfind(':') + 1))));
    EXPECT_TRUE(accepts(ports.back())) << url;
  }
  const ToolRun stream = cluster.command("stream R3 r3.records 3");
  EXPECT_EQ(stream.status, 0) << stream.out;
  const ToolRun messages = cluster.command("messages R3");
  EXPECT_EQ(messages.status, 0) << messages.out;
  EXPECT_EQ(last_line(messages.out), "0");

  const ToolRun killed = cluster.command("kill n2");
  EXPECT_EQ(killed.status, 0) << killed.out;
  EXPECT_FALSE(accepts(ports[1]));
  EXPECT_TRUE(accepts(ports[0]));
  EXPECT_TRUE(accepts(ports[2]));
  // The two left still answer for the replicated stream, once they chose a
  // new leader if n2 was it (a few seconds).
  EXPECT_TRUE(eventually_every([&] { return cluster.command("messages R3").status == 0; },
                               std::chrono::milliseconds(250), std::chrono::seconds(60)));
  EXPECT_EQ(cluster.command("kill n4").status, 2);
}

TEST(NatsScripts, TwoHostsJoinsTwoNamespacesThroughADelayedLink) {
  TempDir dir;
  // Side B times the server's greeting across the link: at least one delay.
  const std::string measure =
      "h=${NATS_URL#nats://}; s=$(date +%s%N); exec 3<>/dev/tcp/${h%:*}/${h##*:} && "
      "head -c 4 <&3 && echo \" greeting_ms=$(( ($(date +%s%N) - s) / 1000000 ))\"";
  const ToolRun run = run_tool("SLUICE_TCP_RELAY=" + tool("sluice-tcp-relay") + " " +
                               script("two_hosts.sh") + " --delay-ms 50 --keep " + dir.path() +
                               " --a 'echo side=$SIDE link=$TWO_HOSTS_LINK' --b '" + measure + "'");
  if (run.status == 77) {
    GTEST_SKIP() << run.out;
  }
  ASSERT_EQ(run.status, 0) << run.out;
  EXPECT_TRUE(run.out.find("link: netem") != std::string::npos ||
              run.out.find("link: sluice-tcp-relay") != std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("side=a link="), std::string::npos) << run.out;
  const auto at = run.out.find("INFO greeting_ms=");
  ASSERT_NE(at, std::string::npos) << run.out;
  EXPECT_GE(std::stol(run.out.substr(at + 17)), 50) << run.out;
  // Cleaned up: the namespaces of this run are gone.
  const auto named = run.out.find("namespaces ");
  ASSERT_NE(named, std::string::npos) << run.out;
  const std::vector<std::string> words =
      split(run.out.substr(named, run.out.find('\n', named) - named), ' ');
  ASSERT_EQ(words.size(), 4U) << run.out;
  const std::string left = run_tool("ip netns list").out;
  for (const std::string& line : split(left, '\n')) {
    const std::string name = line.substr(0, line.find(' '));
    EXPECT_NE(name, words[1]) << left;
    EXPECT_NE(name, words[3]) << left;
  }
}

TEST(NatsScripts, TwoHostsRejectsBadArguments) {
  for (const char* arguments : {"", "--a true", "--a true --b true --loss 2",
                                "--a true --b true --cut-after 1", "--bogus"}) {
    const ToolRun run = run_tool(script("two_hosts.sh") + " " + arguments);
    EXPECT_EQ(run.status, 2) << arguments << "\n" << run.out;
  }
}

}  // namespace
