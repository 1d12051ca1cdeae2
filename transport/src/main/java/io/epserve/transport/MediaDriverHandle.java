package io.epserve.transport;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.exceptions.ClientTimeoutException;
import io.aeron.exceptions.ConductorServiceTimeoutException;
import io.aeron.exceptions.DriverTimeoutException;
import java.io.File;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.agrona.CloseHelper;
import org.agrona.IoUtil;
import org.agrona.concurrent.AgentTerminationException;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * An Aeron client, connected either to a media driver embedded in this process or to an external one.
 *
 * <p><b>Embedded</b> ({@link #launchEmbedded}): one driver thread ({@link ThreadingMode#SHARED}: conductor, sender and
 * receiver in one agent) with a {@link TieredBackoffIdleStrategy}, so it never busy-spins a core yet sends and
 * receives within tens of microseconds while traffic is recent; its own directory
 * {@code aeron-epserve-<pid>-<n>[-name]} under /dev/shm (or java.io.tmpdir where there is no /dev/shm), deleted on
 * start and on {@link #close()}. Directories left by killed processes of ours (same prefix, pid no longer alive) are
 * deleted when the next one launches. A JVM shutdown hook closes a handle that was not closed.
 *
 * <p><b>External</b> ({@link #attach}): connects to a driver already running in the named directory (for instance
 * one shared by several processes on a host, so they talk over IPC); {@link #close()} closes only the client.
 *
 * <p><b>Loss.</b> An Aeron client closes itself for good when its driver stops answering, when the driver gives up on
 * it (missed heartbeats), or when its own conductor stalls; every publication and subscription is then gone. Aeron's
 * default reaction (print, and exit the JVM only for the first cause) is replaced: the handle records why
 * ({@link #lostReason()}) and tells its {@link #onLoss} listeners, so a worker stops with that reason and a non-zero
 * exit code instead of retrying on a dead client.
 *
 * <p>Defaults: term length {@value #DEFAULT_TERM_LENGTH} bytes (16 MiB) for UDP and IPC publications, so one message
 * is at most 2 MiB (termLength / 8; larger exchanges are split by {@link DispatchWriter} and {@link CombineWriter});
 * MTU 8192; 2 MiB socket buffers and receiver window (see {@link Channels}).
 */
public final class MediaDriverHandle implements AutoCloseable {
    public static final int DEFAULT_TERM_LENGTH = 16 * 1024 * 1024;
    public static final String DIR_PREFIX = "aeron-epserve-";
    /** How long an embedded driver and its client wait for each other's heartbeat (Aeron's default: 10 s). */
    static final long EMBEDDED_LIVENESS_MS = 30_000;

    private static final AtomicInteger SEQUENCE = new AtomicInteger();

    private final MediaDriver driver;
    private final Aeron aeron;
    private final String directory;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final OfferCounters offers = new OfferCounters();
    private final Thread shutdownHook;
    private final ClientLoss loss;

    private MediaDriverHandle(MediaDriver driver, Aeron aeron, String directory, ClientLoss loss) {
        this.driver = driver;
        this.aeron = aeron;
        this.directory = directory;
        this.loss = loss;
        this.shutdownHook = new Thread(this::closeQuietly, "epserve-aeron-shutdown");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
        // Any other way the client might close without close(): reported too (the first reason wins).
        aeron.addCloseHandler(() -> {
            if (!closed.get()) {
                loss.lose("the Aeron client closed");
            }
        });
    }

    /**
     * Made before the client (its error handler must exist first): records the first reason the client closed by
     * itself and tells the listeners, once. Other errors the client reports are printed, as Aeron's default does.
     */
    private static final class ClientLoss {
        private final String directory;
        private final List<Consumer<String>> listeners = new CopyOnWriteArrayList<>();
        private volatile String reason;

        ClientLoss(String directory) {
            this.directory = directory;
        }

        void onError(Throwable t) {
            if (t instanceof DriverTimeoutException || t instanceof ClientTimeoutException
                    || t instanceof ConductorServiceTimeoutException) {
                lose(t.getClass().getSimpleName() + ": " + t.getMessage());
            } else if (!(t instanceof AgentTerminationException)) {
                // (AgentTerminationException: the conductor stopping after a loss, already reported)
                System.err.println("aeron client (" + directory + "): " + t);
            }
        }

        void lose(String why) {
            String r;
            synchronized (this) {
                if (reason != null) {
                    return;
                }
                r = "Aeron client of the media driver in " + directory + " is gone (" + why + ")";
                reason = r;
            }
            for (Consumer<String> l : listeners) {
                l.accept(r);
            }
        }

        void add(Consumer<String> listener) {
            String r;
            synchronized (this) {
                r = reason;
                if (r == null) {
                    listeners.add(listener);
                }
            }
            if (r != null) {
                listener.accept(r);
            }
        }
    }

    /** Settings of an embedded driver; every setter returns this. */
    public static final class Options {
        private String name = "";
        private Path baseDir;
        private String directory;
        private int termLength = DEFAULT_TERM_LENGTH;
        private int ipcTermLength = DEFAULT_TERM_LENGTH;
        private boolean sparseTermFiles;
        private IdleStrategy idleStrategy;
        private long publicationConnectionTimeoutNs = TimeUnit.SECONDS.toNanos(5);
        private long imageLivenessTimeoutNs = TimeUnit.SECONDS.toNanos(10);
        private boolean deleteStaleDirectories = true;

        /** Appended to the directory name (letters, digits, '-' and '_'), to tell drivers apart. */
        public Options name(String name) {
            if (!name.matches("[A-Za-z0-9_-]*")) {
                throw new IllegalArgumentException("driver name may hold letters, digits, '-' and '_': " + name);
            }
            this.name = name;
            return this;
        }

        /** Where the per-process directory is made; default {@link #defaultBaseDir()}. */
        public Options baseDir(Path baseDir) {
            this.baseDir = baseDir;
            return this;
        }

        /** The exact directory to use (overrides name and baseDir); deleted on start and close. */
        public Options directory(String directory) {
            this.directory = directory;
            return this;
        }

        /** Term length of UDP publications (power of two, 64 KiB .. 1 GiB); a channel's term-length overrides it. */
        public Options termLength(int termLength) {
            this.termLength = termLength;
            return this;
        }

        /** Term length of IPC publications. */
        public Options ipcTermLength(int ipcTermLength) {
            this.ipcTermLength = ipcTermLength;
            return this;
        }

        /** Sparse log files: less memory touched up front, page faults on first use. Default false. */
        public Options sparseTermFiles(boolean sparse) {
            this.sparseTermFiles = sparse;
            return this;
        }

        /** The driver thread's idle strategy; default {@link TieredBackoffIdleStrategy}. */
        public Options idleStrategy(IdleStrategy idleStrategy) {
            this.idleStrategy = idleStrategy;
            return this;
        }

        /** How long a publication stays connected without status messages from its subscriber. Default 5 s. */
        public Options publicationConnectionTimeoutNs(long ns) {
            this.publicationConnectionTimeoutNs = ns;
            return this;
        }

        /** How long an image lives without data or heartbeats from its publisher. Default 10 s. */
        public Options imageLivenessTimeoutNs(long ns) {
            this.imageLivenessTimeoutNs = ns;
            return this;
        }

        /** Whether launching deletes directories of dead epserve processes in the base directory. Default true. */
        public Options deleteStaleDirectories(boolean delete) {
            this.deleteStaleDirectories = delete;
            return this;
        }
    }

    public static Options options() {
        return new Options();
    }

    /** An embedded driver with the defaults. */
    public static MediaDriverHandle launchEmbedded() {
        return launchEmbedded(new Options());
    }

    /** An embedded driver, and a client connected to it. */
    public static MediaDriverHandle launchEmbedded(Options options) {
        String directory = options.directory;
        if (directory == null) {
            Path base = options.baseDir != null ? options.baseDir : defaultBaseDir();
            if (options.deleteStaleDirectories) {
                deleteStaleDirectories(base);
            }
            String name = DIR_PREFIX + ProcessHandle.current().pid() + "-" + SEQUENCE.incrementAndGet()
                    + (options.name.isEmpty() ? "" : "-" + options.name);
            directory = base.resolve(name).toString();
        }
        MediaDriver.Context context = new MediaDriver.Context()
                .aeronDirectoryName(directory)
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(options.idleStrategy != null ? options.idleStrategy
                        : new TieredBackoffIdleStrategy())
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true)
                .warnIfDirectoryExists(false)
                .printConfigurationOnStart(false)
                .termBufferSparseFile(options.sparseTermFiles)
                .publicationTermBufferLength(options.termLength)
                .ipcTermBufferLength(options.ipcTermLength)
                .mtuLength(Channels.MTU)
                .ipcMtuLength(Channels.MTU)
                .socketSndbufLength(Channels.SOCKET_BUFFER_LENGTH)
                .socketRcvbufLength(Channels.SOCKET_BUFFER_LENGTH)
                .initialWindowLength(Channels.RECEIVER_WINDOW_LENGTH)
                .publicationConnectionTimeoutNs(options.publicationConnectionTimeoutNs)
                .imageLivenessTimeoutNs(options.imageLivenessTimeoutNs)
                // This process's own client shares the process with the driver, so a heartbeat it misses is a stall,
                // not a death. With Aeron's 10 s, an attention worker's client most likely closed that way when four
                // containers started at once on two cores (a CI run of the container test); it never recovered.
                // An external client (an expert worker on IPC) is now also given up on after 30 s, not 10.
                .clientLivenessTimeoutNs(TimeUnit.MILLISECONDS.toNanos(EMBEDDED_LIVENESS_MS))
                .publicationUnblockTimeoutNs(TimeUnit.MILLISECONDS.toNanos(EMBEDDED_LIVENESS_MS + 15_000));
        MediaDriver driver;
        try {
            driver = MediaDriver.launch(context);
        } catch (RuntimeException e) {
            IoUtil.delete(new File(directory), true);
            throw new TransportException("could not start an embedded Aeron media driver in " + directory + ": " + e,
                    e);
        }
        Aeron aeron;
        ClientLoss loss = new ClientLoss(directory);
        try {
            aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(directory)
                    .driverTimeoutMs(EMBEDDED_LIVENESS_MS).errorHandler(loss::onError));
        } catch (RuntimeException e) {
            CloseHelper.quietClose(driver);
            IoUtil.delete(new File(directory), true);
            throw new TransportException("could not connect to the embedded media driver in " + directory + ": " + e,
                    e);
        }
        return new MediaDriverHandle(driver, aeron, directory, loss);
    }

    /** A client of an external media driver running in {@code directory}; waits up to 10 s for it. */
    public static MediaDriverHandle attach(String directory) {
        return attach(directory, TimeUnit.SECONDS.toMillis(10));
    }

    /** A client of an external media driver running in {@code directory}, waiting up to {@code timeoutMs}. */
    public static MediaDriverHandle attach(String directory, long timeoutMs) {
        ClientLoss loss = new ClientLoss(directory);
        try {
            Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(directory).driverTimeoutMs(timeoutMs)
                    .errorHandler(loss::onError));
            return new MediaDriverHandle(null, aeron, directory, loss);
        } catch (RuntimeException e) {
            throw new TransportException("no Aeron media driver answering in " + directory + " within " + timeoutMs
                    + " ms: " + e, e);
        }
    }

    /**
     * Why the client closed by itself (see the class comment), or null if it has not (an orderly {@link #close()} is
     * no loss). Publications, subscriptions and the senders and receivers made from them are then unusable for good.
     */
    public String lostReason() {
        return loss.reason;
    }

    /**
     * Calls {@code listener} once with the reason if the client closes by itself: at once if it already has, else
     * from the Aeron client's thread (so the listener must not block). Never called after {@link #close()}.
     */
    public void onLoss(Consumer<String> listener) {
        loss.add(listener);
    }

    /** Failed offers of every sender made by {@link #newSender}, over this handle's life (thread-safe). */
    public OfferCounters offerCounters() {
        return offers;
    }

    public Aeron aeron() {
        return aeron;
    }

    /** The Aeron directory: the one to name for another process that should share this driver. */
    public String aeronDirectoryName() {
        return directory;
    }

    public boolean isEmbedded() {
        return driver != null;
    }

    /** A sender on a new exclusive publication, with the default deadline. */
    public MessageSender newSender(String channel, int streamId) {
        return new MessageSender(aeron.addExclusivePublication(channel, streamId), new BackoffIdleStrategy(),
                MessageSender.DEFAULT_TIMEOUT_NS, offers);
    }

    /** A sender on a new exclusive publication. */
    public MessageSender newSender(String channel, int streamId, IdleStrategy idleStrategy, long timeoutNs) {
        ExclusivePublication publication = aeron.addExclusivePublication(channel, streamId);
        return new MessageSender(publication, idleStrategy, timeoutNs, offers);
    }

    /** A receiver on a new subscription. */
    public MessageReceiver newReceiver(String channel, int streamId, WireHandler handler) {
        Subscription subscription = aeron.addSubscription(channel, streamId);
        return new MessageReceiver(subscription, handler);
    }

    /** Closes the client and, if embedded, the driver, and deletes the driver's directory. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException shuttingDown) {
                // called from the hook itself
            }
            doClose();
        }
    }

    private void closeQuietly() {
        if (closed.compareAndSet(false, true)) {
            try {
                doClose();
            } catch (RuntimeException ignored) {
                // JVM exit: nothing to report to
            }
        }
    }

    private void doClose() {
        try {
            CloseHelper.closeAll(aeron, driver);
        } finally {
            if (driver != null) {
                IoUtil.delete(new File(directory), true);
            }
        }
    }

    /** /dev/shm when it is a writable directory (a tmpfs on Linux), else java.io.tmpdir. */
    public static Path defaultBaseDir() {
        Path shm = Path.of("/dev/shm");
        if (Files.isDirectory(shm) && Files.isWritable(shm)) {
            return shm;
        }
        return Path.of(System.getProperty("java.io.tmpdir"));
    }

    /**
     * Deletes the directories {@code aeron-epserve-<pid>-...} in {@code baseDir} whose process is no longer alive
     * (left by killed runs). Touches nothing else. Returns how many it deleted.
     */
    public static int deleteStaleDirectories(Path baseDir) {
        int deleted = 0;
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(baseDir, DIR_PREFIX + "*")) {
            for (Path entry : entries) {
                String rest = entry.getFileName().toString().substring(DIR_PREFIX.length());
                int dash = rest.indexOf('-');
                if (dash <= 0 || !Files.isDirectory(entry)) {
                    continue;
                }
                long pid;
                try {
                    pid = Long.parseLong(rest.substring(0, dash));
                } catch (NumberFormatException e) {
                    continue;
                }
                if (ProcessHandle.of(pid).isEmpty()) {
                    IoUtil.delete(entry.toFile(), true);
                    deleted++;
                }
            }
        } catch (IOException e) {
            // an unreadable base directory: nothing to clean
        }
        return deleted;
    }
}
