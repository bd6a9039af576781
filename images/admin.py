"""Admin: the store mirror read-only (the store is the truth), pulls and operations to inspect,
registry credentials to manage without ever showing their secret."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from access.admin import ReadOnlyAdmin  # rows written only by sync_images or the worker
from images import credentials
from images.models import (
    Image,
    ImageLayer,
    Layer,
    Operation,
    Pull,
    PullLayer,
    Reference,
    RegistryCredential,
    Repository,
)


class ImageLayerInline(admin.TabularInline):
    model = ImageLayer
    fields = ["position", "layer"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ReferenceInline(admin.TabularInline):
    model = Reference
    fields = ["repository", "tag", "digest"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "created", "size", "compressed_size", "os", "architecture"]
    search_fields = ["image_id", "references__repository__familiar_name", "references__tag"]
    inlines = [ReferenceInline, ImageLayerInline]


@admin.register(Layer)
class LayerAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "chain_id", "size", "compressed_size"]
    search_fields = ["chain_id", "diff_id", "blob_digest"]


@admin.register(Repository)
class RepositoryAdmin(ReadOnlyAdmin):
    list_display = ["familiar_name", "name"]
    search_fields = ["name"]


class PullLayerInline(admin.TabularInline):
    model = PullLayer
    fields = ["position", "short_id", "status", "current", "total"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Pull)
class PullAdmin(ReadOnlyAdmin):
    list_display = ["reference", "status", "created_by", "created_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["reference", "normalized"]
    inlines = [PullLayerInline]


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ["kind", "args", "status", "conflict", "created_by", "created_at"]
    list_filter = ["kind", "status"]


class RegistryCredentialForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Stored encrypted and never shown. Leave empty to keep the current one.",
    )

    class Meta:
        model = RegistryCredential
        fields = ["registry", "username"]

    def clean_registry(self) -> str:
        try:
            return credentials.normalize_registry(self.cleaned_data["registry"])
        except ValueError as err:
            raise forms.ValidationError(str(err)) from None

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("password"):
            self.add_error("password", "A password or token is needed.")
        return data


@admin.register(RegistryCredential)
class RegistryCredentialAdmin(admin.ModelAdmin):
    form = RegistryCredentialForm
    list_display = ["registry", "username", "updated_at"]

    def save_model(self, request, obj, form, change) -> None:
        password = form.cleaned_data.get("password")
        if password:
            obj.secret = credentials.encrypt_secret(password)
        obj.save()
