package smartcity.connect;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import org.sparkproject.connect.grpc.Grpc;
import org.sparkproject.connect.grpc.Metadata;
import org.sparkproject.connect.grpc.ServerCall;
import org.sparkproject.connect.grpc.ServerCallHandler;
import org.sparkproject.connect.grpc.ServerInterceptor;
import org.sparkproject.connect.grpc.Status;

/**
 * The stack's Spark Connect server answers clients on this machine only. Spark 3.5's server binds
 * its gRPC port on every interface (no binding-address setting before 4.0) and has no
 * authentication, and a client can read and write whatever the server's user can; so every call
 * from a non-loopback peer is refused with PERMISSION_DENIED before it reaches Spark.
 * Registered with spark.connect.grpc.interceptor.classes (spark/connect.ts); grpc is the copy
 * shaded into the spark-connect jar, which scripts/setup.sh compiles this against.
 */
public final class LoopbackOnly implements ServerInterceptor {
  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    SocketAddress peer = call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR);
    if (peer instanceof InetSocketAddress && ((InetSocketAddress) peer).getAddress() != null && ((InetSocketAddress) peer).getAddress().isLoopbackAddress()) {
      return next.startCall(call, headers);
    }
    call.close(Status.PERMISSION_DENIED.withDescription("this Spark Connect server serves clients on its own machine only (peer " + peer + ")"), new Metadata());
    return new ServerCall.Listener<Q>() {};
  }
}
