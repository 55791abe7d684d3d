//! SCIM (docs/contract.md §6): users and groups as the identity provider last
//! set them, and group memberships as rows, so that a large group is paged
//! from here and two PATCHes to one group each add their own rows instead of
//! rewriting a shared list.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScimUsers {
    Table,
    Id,
    UserName,
    UserNameKey,
    ExternalId,
    Active,
    Version,
    Resource,
    Applied,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimGroups {
    Table,
    Id,
    DisplayName,
    DisplayNameKey,
    ExternalId,
    Version,
    Resource,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimMembers {
    Table,
    GroupId,
    UserId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScimUsers::Table)
                .if_not_exists()
                .col(string_len(ScimUsers::Id, 36).primary_key())
                .col(string_len(ScimUsers::UserName, 255))
                // userName is unique without regard to case (RFC 7643 §4.1.1):
                // the lower-cased form carries the unique index.
                .col(string_len(ScimUsers::UserNameKey, 255))
                .col(string_len_null(ScimUsers::ExternalId, 255))
                .col(boolean(ScimUsers::Active))
                .col(big_integer(ScimUsers::Version))
                // The user as the IdP last set it (JSON).
                .col(text(ScimUsers::Resource))
                // What lifecycle last asked for them (JSON), null when nothing.
                .col(text_null(ScimUsers::Applied))
                .col(timestamp_with_time_zone(ScimUsers::CreatedAt))
                .col(timestamp_with_time_zone(ScimUsers::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_scim_users_user_name_key")
                .table(ScimUsers::Table)
                .col(ScimUsers::UserNameKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_scim_users_external_id")
                .table(ScimUsers::Table)
                .col(ScimUsers::ExternalId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimGroups::Table)
                .if_not_exists()
                .col(string_len(ScimGroups::Id, 36).primary_key())
                .col(string_len(ScimGroups::DisplayName, 255))
                .col(string_len(ScimGroups::DisplayNameKey, 255))
                .col(string_len_null(ScimGroups::ExternalId, 255))
                .col(big_integer(ScimGroups::Version))
                // The group as the IdP last set it, without its members (JSON).
                .col(text(ScimGroups::Resource))
                .col(timestamp_with_time_zone(ScimGroups::CreatedAt))
                .col(timestamp_with_time_zone(ScimGroups::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_scim_groups_display_name_key")
                .table(ScimGroups::Table)
                .col(ScimGroups::DisplayNameKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_scim_groups_external_id")
                .table(ScimGroups::Table)
                .col(ScimGroups::ExternalId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimMembers::Table)
                .if_not_exists()
                .col(string_len(ScimMembers::GroupId, 36))
                .col(string_len(ScimMembers::UserId, 36))
                // One row per membership: a repeated add is a no-op, never a duplicate.
                .primary_key(Index::create().col(ScimMembers::GroupId).col(ScimMembers::UserId))
                .to_owned(),
        )
        .await?;
        // A user's groups (their mapping; removing them when they are deleted).
        m.create_index(
            Index::create()
                .name("ix_scim_members_user_id")
                .table(ScimMembers::Table)
                .col(ScimMembers::UserId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [ScimMembers::Table.into_iden(), ScimGroups::Table.into_iden(), ScimUsers::Table.into_iden()] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
