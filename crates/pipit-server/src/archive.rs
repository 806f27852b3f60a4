//! Group commit for the message archive: one writer task gathers what every
//! session wants stored and writes it in one transaction, so a thousand senders
//! cost one commit rather than a thousand.
//!
//! A session awaits [`Archive::write`] before it goes on with its client's input,
//! and its XEP-0198 acknowledgement (`<a h=…/>`) is written only after that: a
//! message acknowledged to its sender has been committed (RFC 6120 §8 "handled";
//! XEP-0198 §4) and survives the server being killed. Pending writes are bounded
//! by the sessions, each of which waits for its own.

use pipit_store::{NewMessage, SharedStore, StoreError, Stored};
use tokio::sync::{mpsc, oneshot};

/// The most messages one transaction takes; more wait for the next.
const MAX_BATCH: usize = 1024;

/// What a write found, one [`Stored`] per message, or why nothing was written.
pub type WriteResult = Result<Vec<Stored>, StoreError>;

struct Write {
    messages: Vec<NewMessage>,
    done: oneshot::Sender<WriteResult>,
}

/// A handle on the writer task; cheap to clone. The task ends when every handle is
/// gone, after writing what it was given.
#[derive(Clone)]
pub struct Archive {
    writes: mpsc::UnboundedSender<Write>,
}

impl Archive {
    /// Starts the writer. Offline rows past `max_offline` per account are refused.
    pub fn start(store: SharedStore, max_offline: usize) -> Archive {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, max_offline, queue));
        Archive { writes }
    }

    /// Stores `messages` in the next transaction and returns once it is committed.
    pub async fn write(&self, messages: Vec<NewMessage>) -> WriteResult {
        let (done, result) = oneshot::channel();
        self.writes
            .send(Write { messages, done })
            .map_err(|_| writer_gone())?;
        result.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Io(std::io::Error::other("the archive writer has stopped"))
}

async fn writer(store: SharedStore, max_offline: usize, mut queue: mpsc::UnboundedReceiver<Write>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let mut size = batch[0].messages.len();
        while size < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => {
                    size += write.messages.len();
                    batch.push(write);
                }
                Err(_) => break,
            }
        }
        let all: Vec<NewMessage> = batch
            .iter()
            .flat_map(|w| w.messages.iter().cloned())
            .collect();
        match store.archive_messages(&all, max_offline).await {
            Ok(stored) => {
                let mut stored = stored.into_iter();
                for write in batch {
                    let own = stored.by_ref().take(write.messages.len()).collect();
                    let _ = write.done.send(Ok(own));
                }
            }
            Err(e) => {
                tracing::error!("archiving {} messages: {e}", all.len());
                // Every waiting session learns nothing was stored; each answers
                // its sender with an error rather than an acknowledgement.
                for write in batch {
                    let _ = write
                        .done
                        .send(Err(StoreError::Io(std::io::Error::other(format!(
                            "archive write failed: {e}"
                        )))));
                }
            }
        }
    }
}
