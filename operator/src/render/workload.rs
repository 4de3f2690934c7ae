//! Deployments of the bot (update handlers, scheduler) and their PodDisruptionBudgets.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::contract::{self, env};
use super::meta::{Component, Ctx};
use super::{CONFIG_CHECKSUM_ANNOTATION, names};
use botfleet_api::{Mode, SecretKeyRef};

/// Requests and limits of a bot container when `spec.resources` is not set.
pub fn default_resources() -> ResourceRequirements {
    let q = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    ResourceRequirements {
        requests: q(&[("cpu", "50m"), ("memory", "64Mi")]),
        limits: q(&[("cpu", "500m"), ("memory", "256Mi")]),
        ..Default::default()
    }
}

/// The update handlers: `spec.replicas` pods running `botfleet-bot serve` (with embedded SQLite
/// the one pod also runs the scheduler in-process). Polling mode and SQLite use `Recreate` so two
/// pollers or two SQLite writers never overlap; webhook mode with PostgreSQL rolls without
/// losing capacity.
pub(super) fn handler_deployment(ctx: &Ctx<'_>, checksum: &str) -> Deployment {
    let sqlite = !ctx.spec.uses_postgres();
    let single = sqlite || ctx.spec.bot.mode == Mode::Polling;
    let strategy = if single {
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            ..Default::default()
        }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }
    };
    let mut ports = vec![port(
        contract::HTTP_PORT_NAME,
        contract::HTTP_CONTAINER_PORT,
    )];
    ports.push(port(
        contract::METRICS_PORT_NAME,
        contract::METRICS_CONTAINER_PORT,
    ));
    let mut container = bot_container(ctx, "bot", contract::SERVE, true);
    container.ports = Some(ports);
    // The in-process scheduler (SQLite) holds the Lease, so it needs the API token.
    deployment(
        ctx,
        Component::Handler,
        names::handler(&ctx.name),
        ctx.spec.replicas,
        strategy,
        container,
        sqlite,
        checksum,
    )
}

/// The scheduler (PostgreSQL only): `spec.scheduler.replicas` pods (default 2) running
/// `botfleet-bot scheduler`; one holds the Lease `<bot>-scheduler` and works, the others wait.
pub(super) fn scheduler_deployment(ctx: &Ctx<'_>, checksum: &str) -> Deployment {
    let mut container = bot_container(ctx, "scheduler", contract::SCHEDULER, false);
    container.ports = Some(vec![port(
        contract::METRICS_PORT_NAME,
        contract::METRICS_CONTAINER_PORT,
    )]);
    deployment(
        ctx,
        Component::Scheduler,
        names::scheduler(&ctx.name),
        ctx.spec.scheduler_replicas(),
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        },
        container,
        true,
        checksum,
    )
}

/// A PodDisruptionBudget (`maxUnavailable: 1`) for a Deployment with more than one replica.
pub(super) fn pdb(
    ctx: &Ctx<'_>,
    component: Component,
    replicas: i32,
) -> Option<PodDisruptionBudget> {
    if replicas <= 1 {
        return None;
    }
    let name = match component {
        Component::Scheduler => names::scheduler(&ctx.name),
        _ => names::handler(&ctx.name),
    };
    Some(PodDisruptionBudget {
        metadata: ctx.metadata(name, component),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(ctx.selector(component)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    ctx: &Ctx<'_>,
    component: Component,
    name: String,
    replicas: i32,
    strategy: DeploymentStrategy,
    container: Container,
    needs_api: bool,
    checksum: &str,
) -> Deployment {
    let sqlite = !ctx.spec.uses_postgres();
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(&ctx.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    volumes.extend(knowledge_volumes(ctx));
    if sqlite {
        volumes.push(Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::data_pvc(&ctx.name),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let annotations = [
        (CONFIG_CHECKSUM_ANNOTATION.to_owned(), checksum.to_owned()),
        (
            "kubectl.kubernetes.io/default-container".to_owned(),
            container.name.clone(),
        ),
    ]
    .into_iter()
    .collect();

    Deployment {
        metadata: ctx.metadata(name, component),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(ctx.selector(component)),
                ..Default::default()
            },
            strategy: Some(strategy),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(ctx.labels(component)),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names::service_account(&ctx.name)),
                    automount_service_account_token: Some(needs_api),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(contract::RUN_AS_USER),
                        run_as_group: Some(contract::RUN_AS_USER),
                        fs_group: Some(contract::RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    init_containers: Some(vec![migrate_container(ctx)]),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One read-only volume per ConfigMap of `knowledge` (`knowledge-<i>`, in name order).
fn knowledge_volumes(ctx: &Ctx<'_>) -> Vec<Volume> {
    ctx.spec
        .knowledge_config_maps()
        .into_iter()
        .enumerate()
        .map(|(i, name)| Volume {
            name: format!("knowledge-{i}"),
            config_map: Some(ConfigMapVolumeSource {
                name,
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// Each knowledge ConfigMap at `/etc/botfleet/knowledge/<name>`, one file per key, where the
/// bot's `configMapKeyRef` sources read it.
fn knowledge_mounts(ctx: &Ctx<'_>) -> Vec<VolumeMount> {
    ctx.spec
        .knowledge_config_maps()
        .into_iter()
        .enumerate()
        .map(|(i, name)| VolumeMount {
            name: format!("knowledge-{i}"),
            mount_path: format!("{}/{name}", botfleet_api::ConfigMapKeyRef::MOUNT_ROOT),
            read_only: Some(true),
            ..Default::default()
        })
        .collect()
}

/// `botfleet-bot migrate` before the bot starts: applies the database migrations and exits.
fn migrate_container(ctx: &Ctx<'_>) -> Container {
    let mut c = bot_container(ctx, "migrate", contract::MIGRATE, false);
    c.liveness_probe = None;
    c.readiness_probe = None;
    c
}

/// A container of the bot image running one subcommand, with the environment of the contract,
/// the restricted security context, resources, probes on the metrics port and the mounts.
fn bot_container(ctx: &Ctx<'_>, name: &str, subcommand: &str, serves_http: bool) -> Container {
    let sqlite = !ctx.spec.uses_postgres();
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: contract::CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    if sqlite {
        mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: contract::DATA_DIR.into(),
            ..Default::default()
        });
    }
    mounts.extend(knowledge_mounts(ctx));
    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(contract::METRICS_PORT_NAME.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    };
    Container {
        name: name.into(),
        image: Some(
            ctx.spec
                .image
                .clone()
                .unwrap_or_else(|| ctx.defaults.image.clone()),
        ),
        image_pull_policy: Some(ctx.defaults.image_pull_policy.clone()),
        args: Some(vec![subcommand.into()]),
        env: Some(bot_env(ctx, serves_http)),
        resources: Some(ctx.spec.resources.clone().unwrap_or_else(default_resources)),
        liveness_probe: Some(probe(contract::LIVENESS_PATH, 10)),
        readiness_probe: Some(probe(contract::READINESS_PATH, 5)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn bot_env(ctx: &Ctx<'_>, serves_http: bool) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let secret = |name: &str, r: &SecretKeyRef| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let spec = ctx.spec;
    let mut env = vec![
        value(env::BOTFLEET_CONFIG, contract::CONFIG_PATH.into()),
        value(env::BOTFLEET_LOG_FORMAT, ctx.defaults.log_format.clone()),
    ];
    if serves_http {
        env.push(value(
            env::BOTFLEET_HTTP_ADDR,
            contract::HTTP_ADDR.to_string(),
        ));
    }
    env.push(value(
        env::BOTFLEET_METRICS_ADDR,
        contract::METRICS_ADDR.to_string(),
    ));
    env.push(value(
        env::TELEGRAM_API_URL,
        spec.telegram
            .api_url
            .clone()
            .unwrap_or_else(|| ctx.defaults.telegram_api_url.clone()),
    ));
    env.push(secret(
        env::TELEGRAM_BOT_TOKEN,
        &spec.telegram.token_secret_ref,
    ));
    if let Some(r) = &spec.bot.llm.api_key_secret_ref {
        env.push(secret(env::LLM_API_KEY, r));
    }
    match spec
        .database
        .as_ref()
        .and_then(|d| d.url_secret_ref.as_ref())
    {
        Some(r) => env.push(secret(env::DATABASE_URL, r)),
        None => env.push(value(env::DATABASE_URL, contract::SQLITE_URL.into())),
    }
    if spec.bot.mode == Mode::Webhook {
        let r = spec
            .telegram
            .webhook_secret_ref
            .clone()
            .unwrap_or_else(|| SecretKeyRef {
                name: names::webhook_secret(&ctx.name),
                key: contract::WEBHOOK_SECRET_KEY.into(),
            });
        env.push(secret(env::WEBHOOK_SECRET_TOKEN, &r));
    }
    env.push(field(env::POD_NAME, "metadata.name"));
    env.push(field(env::POD_NAMESPACE, "metadata.namespace"));
    env.push(value(env::BOTFLEET_LEASE_NAME, names::lease(&ctx.name)));
    env.push(value(
        env::BOTFLEET_TELEGRAM_SENDERS,
        telegram_senders(ctx).to_string(),
    ));
    env
}

/// The processes that send messages at once: the handler pods, plus the active scheduler with
/// PostgreSQL (with SQLite it runs inside the one handler pod; standby schedulers send
/// nothing). Each takes 1/n of Telegram's overall rate, so a change of `spec.replicas` rolls
/// the pods to hand out the new shares.
fn telegram_senders(ctx: &Ctx<'_>) -> i32 {
    let handlers = ctx.spec.replicas.max(1);
    if ctx.spec.uses_postgres() {
        handlers + 1
    } else {
        handlers
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}
