// Waits until a KRaft cluster really serves: every broker registered and unfenced
// (describeCluster lists only unfenced brokers), a probe topic with the cluster's
// replication factor led and in sync, and one record written with acks=all.
// Run by scripts/kafka wait: java -cp 'libs/*' Ready.java BOOTSTRAP NODES TIMEOUT_S DIR
import java.nio.file.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Ready {
  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    int nodes = Integer.parseInt(args[1]);
    long deadline = System.nanoTime() + Duration.ofSeconds(Long.parseLong(args[2])).toNanos();
    Path dir = Paths.get(args[3]);
    short rf = (short) (nodes >= 3 ? 3 : 1);
    long started = System.nanoTime();
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("request.timeout.ms", "5000");
    p.put("default.api.timeout.ms", "10000");
    try (Admin admin = Admin.create(p)) {
      while (true) {
        for (int i = 1; i <= nodes; i++) {
          Path pid = dir.resolve("node" + i).resolve("pid");
          if (Files.exists(pid)) {
            long id = Long.parseLong(Files.readString(pid).trim());
            if (ProcessHandle.of(id).map(h -> !h.isAlive()).orElse(true)) {
              fail("node " + i + " (pid " + id + ") exited");
            }
          }
        }
        try {
          if (admin.describeCluster().nodes().get(5, TimeUnit.SECONDS).size() >= nodes) break;
        } catch (ExecutionException | TimeoutException e) {
          // not yet
        }
        check(deadline, "brokers registered");
        Thread.sleep(200);
      }
      try {
        admin.createTopics(List.of(new NewTopic("__tim_ready", 1, rf))).all().get(30, TimeUnit.SECONDS);
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) throw e;
      }
    }
    Properties pp = new Properties();
    pp.put("bootstrap.servers", bootstrap);
    pp.put("acks", "all");
    pp.put("delivery.timeout.ms", "60000");
    pp.put("request.timeout.ms", "10000");
    try (KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
      producer.send(new ProducerRecord<>("__tim_ready", new byte[] {1})).get(60, TimeUnit.SECONDS);
    }
    System.err.printf("scripts/kafka: %d node(s) ready in %.1f s (after the JVMs started)%n",
        nodes, (System.nanoTime() - started) / 1e9);
  }

  static void check(long deadline, String what) {
    if (System.nanoTime() > deadline) fail("timed out waiting for " + what);
  }

  static void fail(String why) {
    System.err.println("scripts/kafka: " + why);
    System.exit(1);
  }
}
